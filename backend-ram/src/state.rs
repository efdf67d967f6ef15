//! The bytes behind a [`RamDevice`](crate::RamDevice): a live copy, a
//! durable copy and the list of operations that separate them.
//!
//! Invariant: applying `pending`, in order, to `durable` gives `live`.
//! Every change to `live` goes through [`State::perform`], which is what
//! keeps it true, and is the one place fault injection will hook in.

use core::ops::Range;

use segwal::{ErrorKind, Geometry, check_range};

use crate::error::{Operation, RamError};
use crate::stats::Stats;

/// A write or erase accepted since the last sync.
///
/// Ranges are in bytes, already checked against the geometry, so they always
/// lie inside an image of `capacity_bytes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PendingOp {
    /// `bytes` (the concatenated pieces, as the caller passed them, before
    /// any NOR masking) programmed at `offset`.
    Write { offset: usize, bytes: Vec<u8> },
    /// `range` returned to the erased byte.
    Erase { range: Range<usize> },
}

/// Everything a [`RamDevice`](crate::RamDevice) and its clones share.
pub(crate) struct State {
    geometry: Geometry,
    /// What reads see: every accepted write and erase.
    live: Vec<u8>,
    /// What survives a power cut: the contents at the last sync.
    durable: Vec<u8>,
    /// Accepted writes and erases since the last sync, oldest first. It
    /// grows with the unsynced bytes; a test device may spend that memory.
    pending: Vec<PendingOp>,
    stats: Stats,
    /// Erases per erase block. Empty until the first erase: a
    /// byte-addressable device has one erase block per byte, and most users
    /// never erase it.
    erase_counts: Vec<u32>,
}

/// Why `geometry` cannot back a RAM device, if it cannot.
pub(crate) fn geometry_problem(geometry: &Geometry) -> Option<&'static str> {
    // The capacity rule first: `Geometry::is_valid` checks it too, and the
    // more specific message is the more useful one.
    if geometry.erase_size_bytes != 0
        && !geometry
            .capacity_bytes
            .is_multiple_of(u64::from(geometry.erase_size_bytes))
    {
        return Some("capacity_bytes must be a multiple of erase_size_bytes");
    }
    if !geometry.is_valid() {
        return Some(
            "granularities must be non-zero powers of two with \
             read_size_bytes <= write_size_bytes <= erase_size_bytes",
        );
    }
    if usize::try_from(geometry.capacity_bytes).is_err()
        || usize::try_from(geometry.erase_size_bytes).is_err()
    {
        return Some("capacity_bytes does not fit in this host's memory");
    }
    None
}

/// Panics with a message naming the problem when `geometry` is unusable: a
/// bad geometry is a bug in the test that built the device.
fn assert_geometry(geometry: &Geometry) {
    if let Some(problem) = geometry_problem(geometry) {
        panic!("RamDevice: invalid geometry {geometry:?}: {problem}");
    }
}

/// A length as `u64`. A length that does not fit cannot lie inside any
/// device, so it saturates and fails the bounds check.
fn len_u64(len_bytes: usize) -> u64 {
    u64::try_from(len_bytes).unwrap_or(u64::MAX)
}

/// Checks a request with [`check_range`] and turns it into an index range.
fn validate(
    geometry: &Geometry,
    operation: Operation,
    offset: u64,
    len_bytes: u64,
    granularity_bytes: u32,
) -> Result<Range<usize>, RamError> {
    let error = |kind| RamError::new(kind, operation, offset, len_bytes);
    check_range(geometry, offset, len_bytes, granularity_bytes).map_err(error)?;
    // Cannot fail once `check_range` passed: the range ends within
    // `capacity_bytes`, which `assert_geometry` checked fits in `usize`.
    let start = usize::try_from(offset).map_err(|_| error(ErrorKind::OutOfBounds))?;
    let len = usize::try_from(len_bytes).map_err(|_| error(ErrorKind::OutOfBounds))?;
    Ok(start..start + len)
}

/// Programs `new` over `stored`. Without `erase_before_write` the new bytes
/// replace the old. With it, a bit can only move away from its erased
/// value, never back: for flash erased to `0xFF` that is `old & new`.
fn program(geometry: &Geometry, stored: &mut [u8], new: &[u8]) {
    assert_eq!(stored.len(), new.len(), "program: length mismatch");
    if !geometry.erase_before_write {
        stored.copy_from_slice(new);
        return;
    }
    let erased = geometry.erased_byte;
    for (old, new) in stored.iter_mut().zip(new) {
        // XOR with `erased` maps "erased" to 0 and "programmed" to 1, so OR
        // keeps every bit either copy has programmed.
        *old = ((*old ^ erased) | (*new ^ erased)) ^ erased;
    }
}

/// Applies one operation to an image, live or durable alike.
fn apply(geometry: &Geometry, image: &mut [u8], op: &PendingOp) {
    match op {
        PendingOp::Write { offset, bytes } => {
            program(geometry, &mut image[*offset..*offset + bytes.len()], bytes);
        }
        PendingOp::Erase { range } => image[range.clone()].fill(geometry.erased_byte),
    }
}

impl State {
    /// A device holding `image`, both live and durable.
    ///
    /// # Panics
    ///
    /// On an invalid geometry, or when `image` is not `capacity_bytes` long.
    pub(crate) fn from_image(geometry: Geometry, image: Vec<u8>) -> Self {
        assert_geometry(&geometry);
        assert!(
            len_u64(image.len()) == geometry.capacity_bytes,
            "RamDevice: image of {} bytes for a device of {} bytes",
            image.len(),
            geometry.capacity_bytes
        );
        State {
            geometry,
            durable: image.clone(),
            live: image,
            pending: Vec::new(),
            stats: Stats::default(),
            erase_counts: Vec::new(),
        }
    }

    /// A freshly erased device.
    ///
    /// # Panics
    ///
    /// On an invalid geometry.
    pub(crate) fn erased(geometry: Geometry) -> Self {
        assert_geometry(&geometry);
        // Fits: `assert_geometry` checked the capacity against `usize`.
        let capacity = usize::try_from(geometry.capacity_bytes).unwrap_or(0);
        Self::from_image(geometry, vec![geometry.erased_byte; capacity])
    }

    pub(crate) fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), RamError> {
        self.stats.read_calls += 1;
        let len_bytes = len_u64(buf.len());
        let range = validate(
            &self.geometry,
            Operation::Read,
            offset,
            len_bytes,
            self.geometry.read_size_bytes,
        )?;
        buf.copy_from_slice(&self.live[range]);
        self.stats.read_bytes += len_bytes;
        Ok(())
    }

    pub(crate) fn write(&mut self, offset: u64, pieces: &[&[u8]]) -> Result<(), RamError> {
        self.stats.write_calls += 1;
        let len_bytes = pieces
            .iter()
            .try_fold(0u64, |total, piece| total.checked_add(len_u64(piece.len())))
            .unwrap_or(u64::MAX);
        let range = validate(
            &self.geometry,
            Operation::Write,
            offset,
            len_bytes,
            self.geometry.write_size_bytes,
        )?;
        self.perform(PendingOp::Write {
            offset: range.start,
            bytes: pieces.concat(),
        });
        self.stats.write_bytes += len_bytes;
        Ok(())
    }

    pub(crate) fn erase(&mut self, offset: u64, len_bytes: u64) -> Result<(), RamError> {
        self.stats.erase_calls += 1;
        let range = validate(
            &self.geometry,
            Operation::Erase,
            offset,
            len_bytes,
            self.geometry.erase_size_bytes,
        )?;
        self.perform(PendingOp::Erase { range });
        Ok(())
    }

    pub(crate) fn sync(&mut self) -> Result<(), RamError> {
        self.stats.sync_calls += 1;
        // Replaying the pending list costs what was written since the last
        // sync, where copying `live` would cost the whole capacity.
        for op in self.pending.drain(..) {
            apply(&self.geometry, &mut self.durable, &op);
        }
        Ok(())
    }

    /// Applies an accepted write or erase to the live copy and records it
    /// as pending. The one place the live copy changes.
    fn perform(&mut self, op: PendingOp) {
        apply(&self.geometry, &mut self.live, &op);
        if let PendingOp::Erase { range } = &op {
            self.count_erase(range.clone());
        }
        self.pending.push(op);
    }

    fn count_erase(&mut self, range: Range<usize>) {
        let erase_size = self.erase_size();
        if self.erase_counts.is_empty() {
            self.erase_counts = vec![0; self.live.len() / erase_size];
        }
        let blocks = range.start / erase_size..range.end / erase_size;
        for count in &mut self.erase_counts[blocks] {
            *count = count.saturating_add(1);
        }
    }

    fn erase_size(&self) -> usize {
        // Fits: `assert_geometry` checked it; 1 only keeps the division
        // defined.
        usize::try_from(self.geometry.erase_size_bytes).unwrap_or(1)
    }

    pub(crate) fn live_image(&self) -> Vec<u8> {
        self.live.clone()
    }

    pub(crate) fn durable_image(&self) -> Vec<u8> {
        self.durable.clone()
    }

    pub(crate) fn pending_count(&self) -> usize {
        self.pending.len()
    }

    pub(crate) fn stats(&self) -> Stats {
        self.stats
    }

    pub(crate) fn reset_stats(&mut self) {
        self.stats = Stats::default();
    }

    pub(crate) fn erase_counts(&self) -> Vec<u32> {
        if self.erase_counts.is_empty() {
            vec![0; self.live.len() / self.erase_size()]
        } else {
            self.erase_counts.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nor(erased_byte: u8) -> Geometry {
        Geometry {
            read_size_bytes: 1,
            write_size_bytes: 4,
            erase_size_bytes: 16,
            erased_byte,
            erase_before_write: true,
            capacity_bytes: 64,
        }
    }

    #[test]
    fn program_only_moves_bits_away_from_erased() {
        let mut stored = [0xFF, 0xF0, 0x00, 0xAA];
        program(&nor(0xFF), &mut stored, &[0x0F, 0x3C, 0xFF, 0x55]);
        assert_eq!(stored, [0x0F, 0x30, 0x00, 0x00], "erased 0xFF: AND");

        let mut stored = [0x00, 0xF0, 0xFF, 0xAA];
        program(&nor(0x00), &mut stored, &[0x0F, 0x3C, 0x00, 0x55]);
        assert_eq!(stored, [0x0F, 0xFC, 0xFF, 0xFF], "erased 0x00: OR");
    }

    #[test]
    fn program_replaces_without_erase_before_write() {
        let mut stored = [0x00, 0xF0];
        program(&Geometry::byte_addressable(2), &mut stored, &[0xFF, 0x0F]);
        assert_eq!(stored, [0xFF, 0x0F]);
    }

    #[test]
    fn geometry_problems_are_named() {
        assert_eq!(geometry_problem(&nor(0xFF)), None);
        let mut bad = nor(0xFF);
        bad.capacity_bytes = 40;
        assert!(geometry_problem(&bad).is_some_and(|p| p.contains("multiple")));
        let mut bad = nor(0xFF);
        bad.write_size_bytes = 3;
        assert!(geometry_problem(&bad).is_some_and(|p| p.contains("powers of two")));
    }

    #[test]
    fn replaying_pending_onto_durable_gives_live() {
        let mut state = State::erased(nor(0xFF));
        state.write(0, &[&[0x12, 0x34], &[0x56, 0x78]]).unwrap();
        state.erase(16, 16).unwrap();
        state.write(16, &[&[0xAB; 8]]).unwrap();
        state.write(0, &[&[0xF0; 4]]).unwrap();
        assert_eq!(state.pending_count(), 4);
        state.sync().unwrap();
        assert_eq!(state.pending_count(), 0);
        assert_eq!(state.durable, state.live);
        assert_eq!(&state.live[..4], &[0x10, 0x30, 0x50, 0x70]);
    }
}
