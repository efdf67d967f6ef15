//! Walking a log's records with their place (LSN, segment, offset), and
//! printing them as text, JSON lines or hex.
//!
//! The log's iterator gives LSNs and payloads; the tool also wants where
//! each record lies, so it reads the segments with a
//! [`SegmentCursor`] of its own. A segment's records
//! are counted by the log (the next segment's base LSN, or the log's next
//! LSN for the newest), so the walk reads exactly those records, never the
//! bytes a live writer may be writing after them.

use std::io::Write;
use std::ops::Range;
use std::path::Path;

use segwal::{BlockDevice, ReadHint, SegmentCursor, SegmentInfo, SegmentStore};
use segwal_std::FileError;
use serde::Serialize;

use crate::args::RecordFormat;
use crate::error::{Describe, LogError, describe_log, segment_path};
use crate::log::{BUFFER_BYTES, CoreLog};

/// Where a record lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// Its LSN.
    pub lsn: u64,
    /// The sequence number of its segment.
    pub segment: u64,
    /// Its byte offset in the segment file.
    pub offset: u64,
}

/// Where a walk stopped: the place of the next record, so that a later walk
/// (`tail --follow`) resumes there instead of stepping over a segment's
/// records from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    segment: u64,
    offset: u64,
    lsn: u64,
}

/// Calls `visit` with every record whose LSN is in `lsns`, oldest first,
/// and returns where the next record would be.
///
/// # Errors
///
/// A damaged record (naming segment, offset and LSN), a failed read, or an
/// error from `visit`.
pub fn walk(
    log: &mut CoreLog,
    dir: &Path,
    lsns: Range<u64>,
    resume: Option<Resume>,
    visit: &mut dyn FnMut(Place, &[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<Option<Resume>> {
    let segments: Vec<SegmentInfo> = log.segments().to_vec();
    let next_lsn = log.next_lsn().0;
    let mut walk = Walk {
        dir,
        wanted: lsns.start..lsns.end.min(next_lsn),
        resume,
        buffer: vec![0u8; BUFFER_BYTES].into_boxed_slice(),
        visit,
    };
    for (index, info) in segments.iter().enumerate() {
        let segment_end = segments
            .get(index + 1)
            .map_or(next_lsn, |next| next.header.base_lsn);
        let segment_lsns = info.header.base_lsn..segment_end;
        let overlaps = segment_lsns.start < walk.wanted.end && walk.wanted.start < segment_lsns.end;
        if overlaps {
            walk.resume = Some(walk_segment(log, info, segment_lsns, &mut walk)?);
        }
    }
    Ok(walk.resume)
}

/// One walk over the segments.
struct Walk<'a> {
    dir: &'a Path,
    /// The LSNs to visit, within the log.
    wanted: Range<u64>,
    /// Where the previous walk (or segment) stopped.
    resume: Option<Resume>,
    /// The read buffer, lent to each segment's cursor in turn.
    buffer: Box<[u8]>,
    visit: &'a mut dyn FnMut(Place, &[u8]) -> anyhow::Result<()>,
}

/// Walks the records `segment_lsns` of one segment, visiting the wanted
/// ones; returns where it stopped.
fn walk_segment(
    log: &mut CoreLog,
    info: &SegmentInfo,
    segment_lsns: Range<u64>,
    walk: &mut Walk<'_>,
) -> anyhow::Result<Resume> {
    let dir = walk.dir;
    let sequence = info.header.sequence;
    let (device, start) = log
        .store_mut()
        .device(info.id)
        .map_err(segwal::Error::Device)
        .describe(dir)?;
    let buffer = std::mem::take(&mut walk.buffer);
    let mut cursor =
        SegmentCursor::with_header(&device.geometry(), start, info.header, buffer).describe(dir)?;
    // The records counted are whole and durable; the bound is the segment,
    // and only the counted records are read.
    cursor.set_flushed_offset(u64::from(info.header.segment_size_bytes));
    let (mut offset, mut lsn) = match walk.resume {
        Some(at)
            if at.segment == sequence
                && segment_lsns.start <= at.lsn
                && at.lsn <= walk.wanted.start.max(segment_lsns.start) =>
        {
            (at.offset, at.lsn)
        }
        _ => (cursor.records_start(), segment_lsns.start),
    };
    let last = segment_lsns.end.min(walk.wanted.end);
    // Each pass moves to the next LSN; the bound is the segment's count.
    while lsn < walk.wanted.start && lsn < last {
        let (next, is_marker) = cursor
            .skip_record(device, offset)
            .map_err(|error| damaged(&error, dir, lsn))?;
        if is_marker {
            return Err(marker_in_records(dir, sequence, offset, lsn));
        }
        offset = next;
        lsn += 1;
    }
    while lsn < last {
        let record = cursor
            .read_record(device, offset, ReadHint::Sequential)
            .map_err(|error| damaged(&error, dir, lsn))?;
        let place = Place {
            lsn,
            segment: sequence,
            offset,
        };
        (walk.visit)(place, &record.payload)?;
        offset = record.next_offset;
        lsn += 1;
    }
    walk.buffer = cursor.into_buffer();
    Ok(Resume {
        segment: sequence,
        offset,
        lsn,
    })
}

/// A record that does not read, worded with the LSN that should be there.
fn damaged(error: &segwal::Error<FileError>, dir: &Path, lsn: u64) -> anyhow::Error {
    anyhow::Error::new(LogError::new(
        format!("{} (LSN {lsn})", describe_log(error, dir)),
        true,
    ))
}

fn marker_in_records(dir: &Path, segment: u64, offset: u64, lsn: u64) -> anyhow::Error {
    anyhow::Error::new(LogError::new(
        format!(
            "{}: segment {segment} has a clean-close marker at offset {offset} where LSN {lsn} should be",
            segment_path(dir, segment).display()
        ),
        true,
    ))
}

/// The offset just past the last record the log counts in segment
/// `index`: how full the segment is.
///
/// # Errors
///
/// A damaged record header, or a failed read.
pub fn records_end(log: &mut CoreLog, dir: &Path, index: usize) -> anyhow::Result<u64> {
    let segments = log.segments();
    let Some(info) = segments.get(index).copied() else {
        return Ok(0);
    };
    let end = segments
        .get(index + 1)
        .map_or(log.next_lsn().0, |next| next.header.base_lsn);
    let count = end.saturating_sub(info.header.base_lsn);
    let (device, start) = log
        .store_mut()
        .device(info.id)
        .map_err(segwal::Error::Device)
        .describe(dir)?;
    let buffer = vec![0u8; BUFFER_BYTES].into_boxed_slice();
    let mut cursor =
        SegmentCursor::with_header(&device.geometry(), start, info.header, buffer).describe(dir)?;
    cursor.set_flushed_offset(u64::from(info.header.segment_size_bytes));
    let mut offset = cursor.records_start();
    for lsn in info.header.base_lsn..info.header.base_lsn + count {
        let (next, is_marker) = cursor
            .skip_record(device, offset)
            .map_err(|error| damaged(&error, dir, lsn))?;
        if is_marker {
            return Err(marker_in_records(dir, info.header.sequence, offset, lsn));
        }
        offset = next;
    }
    Ok(offset)
}

/// Bytes of payload `text` output shows; the rest is counted.
const TEXT_BYTES_MAX: usize = 256;

/// One record as a JSON line.
#[derive(Debug, Serialize)]
struct RecordLine<'a> {
    lsn: u64,
    segment: u64,
    offset: u64,
    len: usize,
    /// The payload when it is valid UTF-8.
    utf8: Option<&'a str>,
    /// The payload in lowercase hex, always.
    hex: String,
}

/// Prints one record.
///
/// # Errors
///
/// When writing fails.
pub fn print_record(
    out: &mut dyn Write,
    format: RecordFormat,
    place: Place,
    payload: &[u8],
) -> anyhow::Result<()> {
    let Place {
        lsn,
        segment,
        offset,
    } = place;
    let len = payload.len();
    match format {
        RecordFormat::Text => {
            write!(
                out,
                "lsn={lsn} segment={segment} offset={offset} len={len} "
            )?;
            let shown = &payload[..len.min(TEXT_BYTES_MAX)];
            match printable(shown) {
                Some(text) => write!(out, "{text:?}")?,
                None => write!(out, "hex:{}", hex(shown))?,
            }
            if len > shown.len() {
                write!(out, " (+{} bytes)", len - shown.len())?;
            }
            writeln!(out)?;
        }
        RecordFormat::Json => {
            let line = RecordLine {
                lsn,
                segment,
                offset,
                len,
                utf8: std::str::from_utf8(payload).ok(),
                hex: hex(payload),
            };
            serde_json::to_writer(&mut *out, &line)?;
            writeln!(out)?;
        }
        RecordFormat::Hex => {
            writeln!(out, "lsn={lsn} segment={segment} offset={offset} len={len}")?;
            hex_dump(out, payload)?;
        }
    }
    Ok(())
}

/// The bytes as text, when they are UTF-8 without control characters. A
/// payload cut in the middle of a character still shows what comes before.
fn printable(bytes: &[u8]) -> Option<&str> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        // Cut by TEXT_BYTES_MAX inside a character (at most 3 bytes short).
        Err(error) if error.error_len().is_none() && bytes.len() - error.valid_up_to() < 4 => {
            std::str::from_utf8(&bytes[..error.valid_up_to()]).ok()?
        }
        Err(_) => return None,
    };
    (!text.chars().any(char::is_control)).then_some(text)
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

/// `hexdump -C` style: offset, 16 bytes in two groups, the printable ASCII.
fn hex_dump(out: &mut dyn Write, payload: &[u8]) -> anyhow::Result<()> {
    for (row, chunk) in payload.chunks(16).enumerate() {
        write!(out, "  {:08x} ", row * 16)?;
        for column in 0..16 {
            if column == 8 {
                write!(out, " ")?;
            }
            match chunk.get(column) {
                Some(byte) => write!(out, " {byte:02x}")?,
                None => write!(out, "   ")?,
            }
        }
        let ascii: String = chunk
            .iter()
            .map(|&byte| {
                if byte.is_ascii_graphic() || byte == b' ' {
                    char::from(byte)
                } else {
                    '.'
                }
            })
            .collect();
        writeln!(out, "  |{ascii}|")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(payload: &[u8]) -> String {
        let mut out = Vec::new();
        let place = Place {
            lsn: 7,
            segment: 2,
            offset: 64,
        };
        print_record(&mut out, RecordFormat::Text, place, payload).expect("write to a Vec");
        String::from_utf8(out).expect("text output is UTF-8")
    }

    #[test]
    fn text_quotes_printable_and_hexes_the_rest() {
        assert_eq!(
            text(b"say \"hi\""),
            "lsn=7 segment=2 offset=64 len=8 \"say \\\"hi\\\"\"\n"
        );
        assert_eq!(
            text(&[0, 0xff, 0x10]),
            "lsn=7 segment=2 offset=64 len=3 hex:00ff10\n"
        );
        assert_eq!(
            text(b"tab\there"),
            "lsn=7 segment=2 offset=64 len=8 hex:7461620968657265\n"
        );
    }

    #[test]
    fn text_cuts_long_payloads_even_inside_a_character() {
        let mut payload = vec![b'a'; TEXT_BYTES_MAX - 1];
        payload.extend_from_slice("é and more".as_bytes());
        let line = text(&payload);
        assert!(line.ends_with(&format!(" (+{} bytes)\n", payload.len() - TEXT_BYTES_MAX)));
        assert!(line.contains(&"a".repeat(TEXT_BYTES_MAX - 1)));
    }

    #[test]
    fn hex_dump_rows() {
        let mut out = Vec::new();
        hex_dump(&mut out, b"0123456789abcdefXY").expect("write to a Vec");
        let text = String::from_utf8(out).expect("ASCII");
        assert_eq!(
            text,
            "  00000000  30 31 32 33 34 35 36 37  38 39 61 62 63 64 65 66  |0123456789abcdef|\n\
             \x20 00000010  58 59                                             |XY|\n"
        );
    }
}
