//! The two checksums a segment can carry.
//!
//! CRC32C (Castagnoli, `CRC_32_ISCSI`) is the default: it has hardware
//! support on x86-64 and AArch64 servers. CRC-32/IEEE (`CRC_32_ISO_HDLC`) is
//! selectable per segment because many microcontrollers have a CRC-32 unit.
//! The kind is recorded in each segment header, so a log can hold segments
//! of both kinds.
//!
//! The table size is a trade-off between speed and flash: the default is one
//! 1 KiB table per polynomial (fits a 12 KiB firmware image); the
//! `slice16` feature switches to 16 KiB slice-by-16 tables, several times
//! faster, for hosts. Both give identical values.
//!
//! # Hardware CRC
//!
//! The `hw-crc` feature (for hosts with `std`; `segwal-std` turns it on)
//! computes the same two polynomials with the CPU's CRC instructions where
//! it has them, detected at run time: `crc32c` (SSE 4.2 `crc32`, ARMv8
//! CRC) and `crc32fast` (carry-less multiply), about 2 GB/s of tables
//! against 10 GB/s and more. The values are those of the tables, bit for
//! bit, so the bytes on disk do not depend on the path taken (tests check
//! both paths against each other and against whole segments). The
//! portable path stays the default and the only one in `no_std` builds.

use crc::{CRC_32_ISCSI, CRC_32_ISO_HDLC, Crc};

#[cfg(feature = "slice16")]
type Table = crc::Table<16>;
#[cfg(not(feature = "slice16"))]
type Table = crc::Table<1>;

// `static`, not `const`: a `const` table would be copied into every use.
static CRC32C: Crc<u32, Table> = Crc::<u32, Table>::new(&CRC_32_ISCSI);
static CRC32: Crc<u32, Table> = Crc::<u32, Table>::new(&CRC_32_ISO_HDLC);

/// Which checksum a segment's header and records carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ChecksumKind {
    /// CRC32C (Castagnoli), code 1 on disk.
    #[default]
    Crc32c,
    /// CRC-32/IEEE 802.3 (ISO-HDLC), code 2 on disk.
    Crc32,
}

impl ChecksumKind {
    /// The byte stored in the segment header.
    pub const fn code(self) -> u8 {
        match self {
            ChecksumKind::Crc32c => 1,
            ChecksumKind::Crc32 => 2,
        }
    }

    /// The kind stored as `code`, if it is one this version knows.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(ChecksumKind::Crc32c),
            2 => Some(ChecksumKind::Crc32),
            _ => None,
        }
    }

    /// A fresh incremental hasher of this kind: the accelerated path with
    /// the `hw-crc` feature (unless [`use_accelerated`] turned it off), the
    /// tables otherwise.
    pub fn hasher(self) -> Hasher {
        #[cfg(feature = "hw-crc")]
        if ACCELERATED.load(core::sync::atomic::Ordering::Relaxed) {
            return Hasher {
                state: match self {
                    ChecksumKind::Crc32c => State::Crc32c(0),
                    ChecksumKind::Crc32 => State::Crc32(crc32fast::Hasher::new()),
                },
            };
        }
        self.table_hasher()
    }

    /// A hasher that uses the portable tables whatever the features.
    pub fn table_hasher(self) -> Hasher {
        Hasher {
            state: State::Table(match self {
                ChecksumKind::Crc32c => CRC32C.digest(),
                ChecksumKind::Crc32 => CRC32.digest(),
            }),
        }
    }

    /// The checksum of `bytes` in one call.
    pub fn checksum(self, bytes: &[u8]) -> u32 {
        let mut hasher = self.hasher();
        hasher.update(bytes);
        hasher.finalize()
    }
}

/// Whether [`ChecksumKind::hasher`] takes the hardware path (`hw-crc`).
#[cfg(feature = "hw-crc")]
static ACCELERATED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(true);

/// Chooses the hardware path (`true`, the default) or the tables for every
/// hasher made from now on, in the whole process. Both give the same
/// values; the switch exists to compare them and to measure the gain.
#[cfg(feature = "hw-crc")]
pub fn use_accelerated(on: bool) {
    ACCELERATED.store(on, core::sync::atomic::Ordering::Relaxed);
}

/// An incremental checksum: feed it pieces, then `finalize`.
#[derive(Clone)]
pub struct Hasher {
    state: State,
}

#[derive(Clone)]
enum State {
    Table(crc::Digest<'static, u32, Table>),
    /// The CRC32C of the bytes so far (`crc32c_append` continues it).
    #[cfg(feature = "hw-crc")]
    Crc32c(u32),
    #[cfg(feature = "hw-crc")]
    Crc32(crc32fast::Hasher),
}

impl Hasher {
    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.state {
            State::Table(digest) => digest.update(bytes),
            #[cfg(feature = "hw-crc")]
            State::Crc32c(crc) => *crc = crc32c::crc32c_append(*crc, bytes),
            #[cfg(feature = "hw-crc")]
            State::Crc32(hasher) => hasher.update(bytes),
        }
    }

    /// The checksum of everything fed so far.
    pub fn finalize(self) -> u32 {
        match self.state {
            State::Table(digest) => digest.finalize(),
            #[cfg(feature = "hw-crc")]
            State::Crc32c(crc) => crc,
            #[cfg(feature = "hw-crc")]
            State::Crc32(hasher) => hasher.finalize(),
        }
    }
}

impl core::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Hasher")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_values_match_the_catalogue() {
        // The standard check input "123456789".
        assert_eq!(ChecksumKind::Crc32c.checksum(b"123456789"), 0xE306_9283);
        assert_eq!(ChecksumKind::Crc32.checksum(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn incremental_equals_one_shot() {
        for kind in [ChecksumKind::Crc32c, ChecksumKind::Crc32] {
            let mut hasher = kind.hasher();
            hasher.update(b"1234");
            hasher.update(b"");
            hasher.update(b"56789");
            assert_eq!(hasher.finalize(), kind.checksum(b"123456789"));
        }
    }

    /// Deterministic bytes: every length and alignment the hardware paths
    /// split on (8- and 16-byte words, their tails) gets exercised.
    fn bytes(len_bytes: usize, seed: u32) -> std::vec::Vec<u8> {
        let mut state = seed.wrapping_mul(0x9E37_79B9) | 1;
        (0..len_bytes)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state.to_le_bytes()[0]
            })
            .collect()
    }

    #[test]
    fn both_paths_agree_on_every_length_and_split() {
        for kind in [ChecksumKind::Crc32c, ChecksumKind::Crc32] {
            for len_bytes in (0..300).chain([1000, 4096, 65_536 + 3]) {
                let data = bytes(len_bytes, u32::try_from(len_bytes).unwrap_or(0));
                let tables = {
                    let mut hasher = kind.table_hasher();
                    hasher.update(&data);
                    hasher.finalize()
                };
                assert_eq!(kind.checksum(&data), tables, "{kind:?} len {len_bytes}");
                let split = len_bytes / 3;
                let mut hasher = kind.hasher();
                hasher.update(&data[..split]);
                hasher.update(&data[split..]);
                assert_eq!(hasher.finalize(), tables, "{kind:?} split {split}");
            }
        }
    }

    #[test]
    fn codes_round_trip_and_unknown_codes_are_rejected() {
        for kind in [ChecksumKind::Crc32c, ChecksumKind::Crc32] {
            assert_eq!(ChecksumKind::from_code(kind.code()), Some(kind));
        }
        for code in [0u8, 3, 0xFF] {
            assert_eq!(ChecksumKind::from_code(code), None);
        }
    }
}
