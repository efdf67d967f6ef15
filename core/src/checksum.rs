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
//!
//! A host can also [install](install_crc32c_kernel) its own CRC32C kernel:
//! `segwal-std` installs one that runs the SSE 4.2 instruction inline,
//! which on the short pieces a record checksum is made of (a 28-byte prefix
//! and the payload) costs a fraction of the `crc32c` crate's general entry
//! point. A kernel is checked against the tables before it is used, so a
//! wrong one is refused rather than written to disk.

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
    /// the `hw-crc` feature (unless `use_accelerated` turned it off), the
    /// tables otherwise.
    #[cfg_attr(not(target_os = "none"), inline)]
    pub fn hasher(self) -> Hasher {
        #[cfg(feature = "hw-crc")]
        if ACCELERATED.load(core::sync::atomic::Ordering::Relaxed) {
            return Hasher {
                state: match self {
                    ChecksumKind::Crc32c => State::Crc32c(0, crc32c_append_fn()),
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

    /// The checksums of [`CRC_LANES`] independent messages: message `lane`
    /// is `parts[0][lane]`, then `parts[1][lane]`, and so on (an empty
    /// piece adds nothing). Side by side through an installed CRC32C
    /// kernel; one after another otherwise. The values are those of
    /// [`hasher`](Self::hasher).
    #[cfg_attr(not(target_os = "none"), inline)]
    pub fn checksum_lanes(self, parts: &[[&[u8]; CRC_LANES]]) -> [u32; CRC_LANES] {
        #[cfg(feature = "hw-crc")]
        if self == ChecksumKind::Crc32c
            && ACCELERATED.load(core::sync::atomic::Ordering::Relaxed)
            && let Some(kernel) = CRC32C_KERNEL.get()
        {
            let mut crcs = [0u32; CRC_LANES];
            (kernel.append_lanes)(&mut crcs, parts);
            return crcs;
        }
        core::array::from_fn(|lane| {
            let mut hasher = self.hasher();
            for pieces in parts {
                hasher.update(pieces[lane]);
            }
            hasher.finalize()
        })
    }
}

/// Independent checksums [`ChecksumKind::checksum_lanes`] computes side by
/// side: the CRC instruction takes three cycles to give its result and can
/// start one every cycle, so one stream uses a third of it; four streams
/// keep it busy with one to spare.
pub const CRC_LANES: usize = 4;

/// A host's CRC32C, for [`install_crc32c_kernel`].
#[cfg(feature = "hw-crc")]
#[derive(Debug, Clone, Copy)]
pub struct Crc32cKernel {
    /// Given the CRC32C of the bytes so far (0 for none) and more bytes,
    /// the CRC32C of all of them (the contract of `crc32c::crc32c_append`).
    pub append: fn(u32, &[u8]) -> u32,
    /// `append` on each of [`CRC_LANES`] independent streams, computed side
    /// by side: for each `pieces` of `rounds` in turn,
    /// `crcs[lane] = append(crcs[lane], pieces[lane])`. One call for all
    /// the rounds (a record's prefix, then its payload), so that its fixed
    /// cost is paid once per group of records.
    pub append_lanes: fn(&mut [u32; CRC_LANES], &[[&[u8]; CRC_LANES]]),
}

/// The kernel the hardware path uses; the `crc32c` crate until a host
/// installs its own.
#[cfg(feature = "hw-crc")]
static CRC32C_KERNEL: std::sync::OnceLock<Crc32cKernel> = std::sync::OnceLock::new();

/// Installs `kernel` as the CRC32C of every accelerated hasher made from
/// now on, in the whole process, once both its functions have given the
/// tables' values on every length from 0 to 300 bytes, at every alignment
/// up to 8, when continued from a partial CRC, and (the lanes) with other
/// lengths beside them, in two rounds. Returns `true` when `kernel` is the one in use: the
/// first kernel that passes stays; a kernel that fails is refused and the
/// `crc32c` crate stays in use.
#[cfg(feature = "hw-crc")]
pub fn install_crc32c_kernel(kernel: Crc32cKernel) -> bool {
    let same = |installed: &Crc32cKernel| {
        core::ptr::fn_addr_eq(installed.append, kernel.append)
            && core::ptr::fn_addr_eq(installed.append_lanes, kernel.append_lanes)
    };
    if let Some(installed) = CRC32C_KERNEL.get() {
        return same(installed);
    }
    if !kernel_agrees_with_tables(&kernel) {
        return false;
    }
    same(CRC32C_KERNEL.get_or_init(|| kernel))
}

/// `kernel` gives the tables' CRC32C on a fixed pattern: every length up
/// to 300 bytes at offsets 0 to 7, continued at a split point, and in each
/// lane beside three other lengths.
#[cfg(feature = "hw-crc")]
fn kernel_agrees_with_tables(kernel: &Crc32cKernel) -> bool {
    const PATTERN_BYTES: usize = 308;
    let mut pattern = [0u8; PATTERN_BYTES];
    let mut state: u32 = 0x9E37_79B9;
    for byte in &mut pattern {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        *byte = state.to_le_bytes()[0];
    }
    (0..8).all(|start| {
        (0..=300).all(|len_bytes| {
            let bytes = &pattern[start..start + len_bytes];
            let expected = CRC32C.checksum(bytes);
            let (head, tail) = bytes.split_at(len_bytes / 3);
            let lane = len_bytes % CRC_LANES;
            // The other lanes: shorter, longer, empty, from other offsets.
            let mut pieces = [&pattern[..len_bytes / 2], &pattern[1..], &[][..], bytes];
            pieces.swap(lane, CRC_LANES - 1);
            let mut crcs = [0u32; CRC_LANES];
            crcs[lane] = (kernel.append)(0, head);
            pieces[lane] = tail;
            // In two rounds: `tail` split again, the other lanes whole in
            // the second round.
            let (tail_head, tail_rest) = tail.split_at(tail.len() / 2);
            let mut first_round = [&[][..]; CRC_LANES];
            first_round[lane] = tail_head;
            let mut second_round = pieces;
            second_round[lane] = tail_rest;
            (kernel.append_lanes)(&mut crcs, &[first_round, second_round]);
            // The other lanes started from nothing.
            let lanes_agree = (0..CRC_LANES).all(|l| {
                let want = if l == lane {
                    expected
                } else {
                    CRC32C.checksum(pieces[l])
                };
                crcs[l] == want
            });
            (kernel.append)(0, bytes) == expected
                && (kernel.append)((kernel.append)(0, head), tail) == expected
                && lanes_agree
        })
    })
}

/// The CRC32C continuation of the hardware path: the installed kernel's,
/// or the `crc32c` crate's. Looked up once per hasher, not per piece.
#[cfg(feature = "hw-crc")]
#[inline]
fn crc32c_append_fn() -> fn(u32, &[u8]) -> u32 {
    match CRC32C_KERNEL.get() {
        Some(kernel) => kernel.append,
        None => crc32c::crc32c_append,
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
    /// The CRC32C of the bytes so far, and the function that continues it.
    #[cfg(feature = "hw-crc")]
    Crc32c(u32, fn(u32, &[u8]) -> u32),
    #[cfg(feature = "hw-crc")]
    Crc32(crc32fast::Hasher),
}

// The hasher's methods are inline on hosts: a record checksum is a few
// short updates, called across the crate boundary from the generic log.
impl Hasher {
    /// Feeds `bytes`.
    #[cfg_attr(not(target_os = "none"), inline)]
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.state {
            State::Table(digest) => digest.update(bytes),
            #[cfg(feature = "hw-crc")]
            State::Crc32c(crc, append) => *crc = append(*crc, bytes),
            #[cfg(feature = "hw-crc")]
            State::Crc32(hasher) => hasher.update(bytes),
        }
    }

    /// The checksum of everything fed so far.
    #[cfg_attr(not(target_os = "none"), inline)]
    pub fn finalize(self) -> u32 {
        match self.state {
            State::Table(digest) => digest.finalize(),
            #[cfg(feature = "hw-crc")]
            State::Crc32c(crc, _) => crc,
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
    fn lanes_give_each_message_its_own_checksum() {
        for kind in [ChecksumKind::Crc32c, ChecksumKind::Crc32] {
            let data = bytes(700, 7);
            for len_bytes in [0usize, 1, 7, 8, 28, 100, 128, 300] {
                let heads: [&[u8]; CRC_LANES] = core::array::from_fn(|lane| &data[lane..lane + 28]);
                let bodies: [&[u8]; CRC_LANES] = core::array::from_fn(|lane| {
                    let start = 40 + lane * 3;
                    &data[start..start + len_bytes + lane * 5]
                });
                let lanes = kind.checksum_lanes(&[heads, bodies]);
                for lane in 0..CRC_LANES {
                    let mut hasher = kind.hasher();
                    hasher.update(heads[lane]);
                    hasher.update(bodies[lane]);
                    assert_eq!(
                        lanes[lane],
                        hasher.finalize(),
                        "{kind:?} len {len_bytes} lane {lane}"
                    );
                }
            }
        }
    }

    /// A kernel is held to the tables before it may be installed: the
    /// `crc32c` crate passes, a kernel wrong on one length does not, nor a
    /// lanes function that mixes up its lanes.
    #[cfg(feature = "hw-crc")]
    #[test]
    fn a_kernel_must_agree_with_the_tables() {
        fn lanes(crcs: &mut [u32; CRC_LANES], rounds: &[[&[u8]; CRC_LANES]]) {
            for pieces in rounds {
                for (crc, piece) in crcs.iter_mut().zip(pieces) {
                    *crc = crc32c::crc32c_append(*crc, piece);
                }
            }
        }
        fn wrong_at_seven(crc: u32, bytes: &[u8]) -> u32 {
            let right = crc32c::crc32c_append(crc, bytes);
            if bytes.len() == 7 { right ^ 1 } else { right }
        }
        fn swapped_lanes(crcs: &mut [u32; CRC_LANES], rounds: &[[&[u8]; CRC_LANES]]) {
            lanes(crcs, rounds);
            crcs.swap(0, 1);
        }
        fn last_round_only(crcs: &mut [u32; CRC_LANES], rounds: &[[&[u8]; CRC_LANES]]) {
            lanes(crcs, &rounds[rounds.len().saturating_sub(1)..]);
        }
        let good = Crc32cKernel {
            append: crc32c::crc32c_append,
            append_lanes: lanes,
        };
        assert!(kernel_agrees_with_tables(&good));
        assert!(!kernel_agrees_with_tables(&Crc32cKernel {
            append: wrong_at_seven,
            ..good
        }));
        assert!(!kernel_agrees_with_tables(&Crc32cKernel {
            append_lanes: swapped_lanes,
            ..good
        }));
        assert!(!kernel_agrees_with_tables(&Crc32cKernel {
            append_lanes: last_round_only,
            ..good
        }));
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
