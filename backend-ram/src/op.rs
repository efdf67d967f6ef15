//! A write or erase as it reaches the medium, and what it does to an image.
//!
//! One function, [`apply`], changes bytes: the live copy, the durable copy
//! at sync and every crash image go through it, so an operation means the
//! same thing wherever it lands. An operation the power cut interrupted is
//! kept as one [`PendingOp::Torn`] whose torn bytes are drawn from a stored
//! seed against the image it is applied to, so the same crash gives the
//! same bytes every time it is rebuilt.

use core::ops::Range;

use segwal::Geometry;

use crate::rng::Rng;

/// What a torn unit holds: [`TornFill`](crate::TornFill) with `Mixed`
/// already drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fill {
    /// Random bytes from the operation's seed.
    Random,
    /// Zero bytes.
    Zero,
    /// The bytes the image held.
    Old,
}

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
    /// A write or erase the power cut interrupted: `done` (a `Write` or
    /// `Erase`, possibly empty) completed, the unit at `torn` was in flight,
    /// and nothing after it was reached.
    Torn {
        done: Box<PendingOp>,
        torn: Range<usize>,
        fill: Fill,
        seed: u64,
    },
}

/// Programs `new` over `stored`. Without `erase_before_write` the new bytes
/// replace the old. With it, a bit can only move away from its erased
/// value, never back: for flash erased to `0xFF` that is `old & new`.
pub(crate) fn program(geometry: &Geometry, stored: &mut [u8], new: &[u8]) {
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

/// Applies one operation to an image, live, durable or crashed alike.
pub(crate) fn apply(geometry: &Geometry, image: &mut [u8], op: &PendingOp) {
    match op {
        PendingOp::Write { offset, bytes } => {
            program(geometry, &mut image[*offset..*offset + bytes.len()], bytes);
        }
        PendingOp::Erase { range } => image[range.clone()].fill(geometry.erased_byte),
        PendingOp::Torn {
            done,
            torn,
            fill,
            seed,
        } => {
            apply(geometry, image, done);
            let erasing = matches!(**done, PendingOp::Erase { .. });
            tear(geometry, &mut image[torn.clone()], erasing, *fill, *seed);
        }
    }
}

/// Leaves `unit` as an interrupted write or erase would.
fn tear(geometry: &Geometry, unit: &mut [u8], erasing: bool, fill: Fill, seed: u64) {
    let mut value = vec![0u8; unit.len()];
    match fill {
        Fill::Random => Rng::new(seed).fill(&mut value),
        Fill::Zero => {}
        Fill::Old => value.copy_from_slice(unit),
    }
    if erasing {
        // Chips pre-program a block before erasing it: anything goes.
        unit.copy_from_slice(&value);
    } else {
        program(geometry, unit, &value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nor(erased_byte: u8) -> Geometry {
        crate::state::test_nor_geometry(erased_byte)
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

    fn torn_write(fill: Fill) -> PendingOp {
        PendingOp::Torn {
            done: Box::new(PendingOp::Write {
                offset: 2,
                bytes: vec![0x11, 0x22],
            }),
            torn: 4..6,
            fill,
            seed: 5,
        }
    }

    #[test]
    fn a_torn_write_keeps_its_prefix_and_fills_its_unit() {
        let geometry = Geometry::byte_addressable(8);
        let base = [0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7];
        let run = |fill| {
            let mut image = base;
            apply(&geometry, &mut image, &torn_write(fill));
            image
        };
        assert_eq!(
            run(Fill::Old),
            [0xA0, 0xA1, 0x11, 0x22, 0xA4, 0xA5, 0xA6, 0xA7]
        );
        assert_eq!(run(Fill::Zero), [0xA0, 0xA1, 0x11, 0x22, 0, 0, 0xA6, 0xA7]);
        let random = run(Fill::Random);
        assert_eq!(random, run(Fill::Random), "the seed fixes the bytes");
        assert_eq!(
            (&random[..4], &random[6..]),
            (&run(Fill::Old)[..4], &base[6..])
        );
    }

    #[test]
    fn a_torn_nor_write_only_clears_bits() {
        let geometry = nor(0xFF);
        let mut image = [0xF0u8; 64];
        apply(&geometry, &mut image, &torn_write(Fill::Random));
        let mut fill = [0u8; 2];
        Rng::new(5).fill(&mut fill);
        assert_eq!(&image[4..6], &[0xF0 & fill[0], 0xF0 & fill[1]]);
    }

    #[test]
    fn a_torn_erase_takes_the_fill_as_is() {
        let geometry = nor(0xFF);
        let mut image = [0x00u8; 64];
        let op = PendingOp::Torn {
            done: Box::new(PendingOp::Erase { range: 0..16 }),
            torn: 16..20,
            fill: Fill::Random,
            seed: 9,
        };
        apply(&geometry, &mut image, &op);
        let mut fill = [0u8; 4];
        Rng::new(9).fill(&mut fill);
        assert_eq!(&image[..16], &[0xFF; 16]);
        assert_eq!(&image[16..20], &fill);
        assert_eq!(&image[20..], &[0x00; 44]);
    }
}
