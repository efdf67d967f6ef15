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

    /// A fresh incremental hasher of this kind.
    pub fn hasher(self) -> Hasher {
        Hasher {
            digest: match self {
                ChecksumKind::Crc32c => CRC32C.digest(),
                ChecksumKind::Crc32 => CRC32.digest(),
            },
        }
    }

    /// The checksum of `bytes` in one call.
    pub fn checksum(self, bytes: &[u8]) -> u32 {
        let mut hasher = self.hasher();
        hasher.update(bytes);
        hasher.finalize()
    }
}

/// An incremental checksum: feed it pieces, then `finalize`.
#[derive(Clone)]
pub struct Hasher {
    digest: crc::Digest<'static, u32, Table>,
}

impl Hasher {
    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.digest.update(bytes);
    }

    /// The checksum of everything fed so far.
    pub fn finalize(self) -> u32 {
        self.digest.finalize()
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
