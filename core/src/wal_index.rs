//! Record offsets of recently read segments, so a read by LSN is one device
//! read (`alloc` only; without it the log walks record headers instead).
//!
//! Memory is bounded by the segment size, not the log's length: at most
//! [`CACHED_SEGMENTS`] segments are indexed, 4 bytes per record each.

use alloc::vec::Vec;

use crate::format::{SegmentHeader, record_extent_bytes};

/// Segments whose offsets are kept.
pub const CACHED_SEGMENTS: usize = 4;

/// Offsets per segment sequence, least recently used first.
#[derive(Debug, Default)]
pub(crate) struct IndexCache {
    entries: Vec<(u64, Vec<u32>)>,
}

impl IndexCache {
    /// The offset of record `ordinal` of segment `sequence`, if indexed.
    pub(crate) fn lookup(&mut self, sequence: u64, ordinal: u64) -> Option<u64> {
        let at = self.entries.iter().position(|(s, _)| *s == sequence)?;
        let ordinal = usize::try_from(ordinal).ok()?;
        let offset = *self.entries[at].1.get(ordinal)?;
        // Most recently used last; it usually is already.
        if at + 1 != self.entries.len() {
            let entry = self.entries.remove(at);
            self.entries.push(entry);
        }
        Some(u64::from(offset))
    }

    /// The offset of record `ordinal` of segment `sequence`, if indexed,
    /// without counting as a use.
    pub(crate) fn peek(&self, sequence: u64, ordinal: u64) -> Option<u64> {
        let (_, offsets) = self.entries.iter().find(|(s, _)| *s == sequence)?;
        let offset = *offsets.get(usize::try_from(ordinal).ok()?)?;
        Some(u64::from(offset))
    }

    /// Keeps the complete offsets of segment `sequence`.
    pub(crate) fn insert(&mut self, sequence: u64, offsets: Vec<u32>) {
        self.forget(sequence);
        if self.entries.len() == CACHED_SEGMENTS {
            self.entries.remove(0);
        }
        self.entries.push((sequence, offsets));
    }

    /// Drops segment `sequence`.
    pub(crate) fn forget(&mut self, sequence: u64) {
        self.entries.retain(|(s, _)| *s != sequence);
    }

    /// Keeps only the first `count` records of segment `sequence`.
    pub(crate) fn truncate(&mut self, sequence: u64, count: u64) {
        if let Some((_, offsets)) = self.entries.iter_mut().find(|(s, _)| *s == sequence) {
            offsets.truncate(usize::try_from(count).unwrap_or(usize::MAX));
        }
    }

    /// Extends the index of the segment being appended to, if it has one,
    /// with the records of a batch written from `first_offset`.
    #[inline]
    pub(crate) fn note_appended(
        &mut self,
        header: &SegmentHeader,
        first_offset: u64,
        payloads: &[&[u8]],
    ) {
        let Some((_, offsets)) = self.entries.iter_mut().find(|(s, _)| *s == header.sequence)
        else {
            return;
        };
        let align = header.record_align_bytes();
        let mut offset = first_offset;
        for payload in payloads {
            offsets.push(u32::try_from(offset).unwrap_or(u32::MAX));
            let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
            offset += record_extent_bytes(len, align);
        }
    }
}
