//! Wording shared by the commands' reports.

use segwal::ChecksumKind;

use crate::log::TailFinding;

/// `n` and the noun, plural unless `n` is 1: "1 record", "2 records".
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// One phrase for the tail state.
pub fn describe_tail(tail: &TailFinding) -> String {
    match *tail {
        TailFinding::Clean => "clean".to_owned(),
        TailFinding::Torn {
            segment,
            offset,
            bytes,
        } => format!(
            "torn: {bytes} bytes after the last record (segment {segment}, offset {offset}) \
             were being written when the writer stopped; never acknowledged, they are cut \
             by the next read-write open or `segwal repair`"
        ),
        TailFinding::Damaged {
            segment,
            offset,
            next_valid_offset,
            ..
        } => format!(
            "DAMAGED: synced records in segment {segment} are damaged at offset {offset} \
             (a record written after they were synced follows at offset {next_valid_offset})"
        ),
    }
}

/// The name of a checksum kind.
pub fn checksum_name(kind: ChecksumKind) -> &'static str {
    match kind {
        ChecksumKind::Crc32c => "crc32c",
        ChecksumKind::Crc32 => "crc32",
        _ => "unknown",
    }
}
