//! The raw libc calls std does not offer: vectored positional writes,
//! preallocation, writeback hints and `flock`; and the CPU's CRC32C
//! instruction.
//!
//! This is the only module with `unsafe`. Each wrapper makes exactly one
//! system call and turns its result into an `io::Result`; retrying on
//! `EINTR` and looping on short writes belong to the callers, where they can
//! be tested without a kernel. The CRC32C kernel is the one other use: an
//! instruction the CPU was checked to have.

use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;

/// The most iovecs one `pwritev` accepts on Linux (`UIO_MAXIOV`); more
/// fail with `EINVAL`. The libc crate does not export it for Linux.
pub(crate) const IOV_MAX: usize = 1024;

/// Converts a byte offset or length to `off_t`, failing with `EFBIG` (as the
/// kernel would) where it does not fit, e.g. past 2 GiB on 32-bit targets.
fn to_off_t(value: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(value).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))
}

/// One `pwritev(2)` of `iovecs` at `offset`; returns the bytes written,
/// which may be fewer than asked for.
///
/// # Errors
///
/// The OS error, `EINTR` included.
///
/// # Panics
///
/// When `iovecs` holds more than [`IOV_MAX`] slices: the caller must split.
pub(crate) fn pwritev(file: &File, iovecs: &[IoSlice<'_>], offset: u64) -> io::Result<usize> {
    assert!(
        iovecs.len() <= IOV_MAX,
        "pwritev given {} iovecs",
        iovecs.len()
    );
    let offset = to_off_t(offset)?;
    // The assert above bounds the count to 1024, which fits any `c_int`.
    let iovec_count = libc::c_int::try_from(iovecs.len()).expect("at most IOV_MAX iovecs");
    // SAFETY: std guarantees `IoSlice` is ABI-compatible with `struct iovec`
    // on Unix, so the pointer and count describe `iovec_count` valid iovecs,
    // each pointing into a slice that the borrow keeps alive for the whole
    // call. The kernel only reads through them. The descriptor stays open
    // because `file` is borrowed for the call.
    #[allow(unsafe_code)]
    let written = unsafe {
        libc::pwritev(
            file.as_raw_fd(),
            iovecs.as_ptr().cast(),
            iovec_count,
            offset,
        )
    };
    // A negative return is -1 with the cause in errno; `try_from` fails
    // exactly then.
    usize::try_from(written).map_err(|_| io::Error::last_os_error())
}

/// One `fallocate(2)` with mode 0: allocates `[0, len_bytes)` and extends the
/// file size to cover it.
///
/// # Errors
///
/// The OS error: `EOPNOTSUPP` where the file system cannot preallocate,
/// `ENOSPC`, `EINTR`.
pub(crate) fn fallocate(file: &File, len_bytes: u64) -> io::Result<()> {
    let len_bytes = to_off_t(len_bytes)?;
    // SAFETY: fallocate takes no pointers; the descriptor stays open because
    // `file` is borrowed for the call.
    #[allow(unsafe_code)]
    let status = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len_bytes) };
    if status == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One `posix_fallocate(3)` of `[0, len_bytes)`.
///
/// # Errors
///
/// The error number the call returns (it does not set errno).
pub(crate) fn posix_fallocate(file: &File, len_bytes: u64) -> io::Result<()> {
    let len_bytes = to_off_t(len_bytes)?;
    // SAFETY: posix_fallocate takes no pointers; the descriptor stays open
    // because `file` is borrowed for the call.
    #[allow(unsafe_code)]
    let status = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len_bytes) };
    if status == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(status))
    }
}

/// One non-blocking `flock(2)` taking the exclusive lock on `file`'s open
/// file description.
///
/// std's `File::try_lock` does the same but needs Rust 1.89, past this
/// workspace's `rust-version`.
///
/// # Errors
///
/// The OS error: `EWOULDBLOCK` when another open file description holds a
/// lock on the file (in this process or another), `ENOLCK`, or
/// `EOPNOTSUPP`/`ENOSYS` where the file system has no locks. The call never
/// waits, so it does not fail with `EINTR`.
pub(crate) fn try_lock_exclusive(file: &File) -> io::Result<()> {
    flock(file, libc::LOCK_EX | libc::LOCK_NB)
}

/// One non-blocking `flock(2)` taking a shared lock on `file`'s open file
/// description; closing the file releases it.
///
/// # Errors
///
/// As for [`try_lock_exclusive`]; `EWOULDBLOCK` when an exclusive lock is
/// held.
pub(crate) fn try_lock_shared(file: &File) -> io::Result<()> {
    flock(file, libc::LOCK_SH | libc::LOCK_NB)
}

fn flock(file: &File, operation: libc::c_int) -> io::Result<()> {
    // SAFETY: flock takes no pointers; the descriptor stays open because
    // `file` is borrowed for the call.
    #[allow(unsafe_code)]
    let status = unsafe { libc::flock(file.as_raw_fd(), operation) };
    if status == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One `sync_file_range(2)` with `SYNC_FILE_RANGE_WRITE`: starts writeback
/// of the dirty pages of `[offset, offset + len_bytes)` and returns without
/// waiting for it. It promises nothing about durability (no metadata, no
/// device cache flush): it only spreads the disk's work over the writes, so
/// that a later `fdatasync` finds less to do.
///
/// # Errors
///
/// The OS error: `ESPIPE` or `EINVAL` where the file cannot take the hint,
/// `EIO`, `ENOMEM`, `ENOSPC`.
pub(crate) fn start_writeback(file: &File, offset: u64, len_bytes: u64) -> io::Result<()> {
    let offset = to_off_t(offset)?;
    let len_bytes = to_off_t(len_bytes)?;
    // SAFETY: sync_file_range takes no pointers; the descriptor stays open
    // because `file` is borrowed for the call.
    #[allow(unsafe_code)]
    let status = unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset,
            len_bytes,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
    if status == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Pieces at least this long go to the `crc32c` crate, which runs three
/// CRC streams side by side (and combines them) from 768 bytes on; below
/// that it runs one stream, as [`crc32c_append`] does, after more set-up.
const CRC32C_INLINE_LEN_MAX: usize = 768;

/// The CRC32C kernel `segwal-std` installs in the core
/// (`segwal::install_crc32c_kernel`, which checks it against the tables
/// first): where the CPU has SSE 4.2, one whose single stream calls the
/// instruction without asking the CPU again (about 12 instructions of an
/// append's checksum, two pieces).
fn crc32c_kernel() -> segwal::Crc32cKernel {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sse4.2") {
        return segwal::Crc32cKernel {
            append: crc32c_append_sse42,
            append_lanes: crc32c_append_lanes,
        };
    }
    segwal::Crc32cKernel {
        append: crc32c_append,
        append_lanes: crc32c_append_lanes,
    }
}

/// CRC32C continued over `bytes` (the contract of
/// `crc32c::crc32c_append`): the SSE 4.2 `crc32` instruction inline, eight
/// bytes a step, where the CPU has it; the `crc32c` crate otherwise and
/// for long pieces.
fn crc32c_append(crc: u32, bytes: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sse4.2") {
        return crc32c_append_sse42(crc, bytes);
    }
    crc32c::crc32c_append(crc, bytes)
}

/// [`crc32c_append`] on a CPU known to have SSE 4.2: only
/// [`crc32c_kernel`] after detecting it, and [`crc32c_append`] after
/// detecting it, refer to this function.
#[cfg(target_arch = "x86_64")]
fn crc32c_append_sse42(crc: u32, bytes: &[u8]) -> u32 {
    debug_assert!(std::arch::is_x86_feature_detected!("sse4.2"));
    if bytes.len() < CRC32C_INLINE_LEN_MAX {
        // SAFETY: the CPU has SSE 4.2 (both callers detected it), the only
        // requirement of a `#[target_feature(enable = "sse4.2")]` function.
        #[allow(unsafe_code)]
        return unsafe { crc32c_sse42(crc, bytes) };
    }
    crc32c::crc32c_append(crc, bytes)
}

/// [`crc32c_append`] on each of `segwal::CRC_LANES` streams, one round of
/// pieces after another, side by side over the words all of a round's
/// pieces have, so that the instruction's latency is hidden; each stream's
/// rest goes alone.
fn crc32c_append_lanes(crcs: &mut [u32; segwal::CRC_LANES], rounds: &[[&[u8]; segwal::CRC_LANES]]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the CPU has SSE 4.2 (detected just above), the only
        // requirement of a `#[target_feature(enable = "sse4.2")]` function.
        #[allow(unsafe_code)]
        unsafe {
            crc32c_rounds_sse42(crcs, rounds);
        }
        return;
    }
    for pieces in rounds {
        for (crc, piece) in crcs.iter_mut().zip(pieces) {
            *crc = crc32c_append(*crc, piece);
        }
    }
}

/// Each round in turn: [`crc32c_words_sse42`] on a round of pieces that
/// are all whole words of one length (a scan's prefixes and payloads of
/// records of one size), the states kept raw in registers from one such
/// round to the next; [`crc32c_lanes_sse42`] on any other.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn crc32c_rounds_sse42(crcs: &mut [u32; segwal::CRC_LANES], rounds: &[[&[u8]; segwal::CRC_LANES]]) {
    let mut states = crcs.map(|crc| u64::from(!crc));
    for pieces in rounds {
        let len_bytes = pieces[0].len();
        if len_bytes % 8 == 0 && pieces.iter().all(|piece| piece.len() == len_bytes) {
            // Written out, not by `map`: a closure is not compiled with the
            // function's target feature and would stay out of line.
            let [a, b, c, d] = *pieces;
            let words = [
                a.as_chunks::<8>().0,
                b.as_chunks::<8>().0,
                c.as_chunks::<8>().0,
                d.as_chunks::<8>().0,
            ];
            states = crc32c_words_sse42(states, words);
        } else {
            let mut round = states.map(finish_raw);
            crc32c_lanes_sse42(&mut round, *pieces);
            states = round.map(|crc| u64::from(!crc));
        }
    }
    *crcs = states.map(finish_raw);
}

/// The CRC32C a raw state stands for (the instruction leaves it in the low
/// 32 bits, not inverted).
#[inline]
fn finish_raw(state: u64) -> u32 {
    // The high 32 bits are zero: the instruction clears them.
    #[allow(clippy::cast_possible_truncation)]
    let crc = state as u32;
    !crc
}

/// The raw states of four streams continued over the words all four
/// have (`words[0].len()` of them, at most the shortest), four independent
/// instructions a step.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
#[inline]
fn crc32c_words_sse42(
    states: [u64; segwal::CRC_LANES],
    words: [&[[u8; 8]]; segwal::CRC_LANES],
) -> [u64; segwal::CRC_LANES] {
    use std::arch::x86_64::_mm_crc32_u64;
    let [mut state_a, mut state_b, mut state_c, mut state_d] = states;
    let [words_a, words_b, words_c, words_d] = words;
    for (((word_a, word_b), word_c), word_d) in
        words_a.iter().zip(words_b).zip(words_c).zip(words_d)
    {
        state_a = _mm_crc32_u64(state_a, u64::from_le_bytes(*word_a));
        state_b = _mm_crc32_u64(state_b, u64::from_le_bytes(*word_b));
        state_c = _mm_crc32_u64(state_c, u64::from_le_bytes(*word_c));
        state_d = _mm_crc32_u64(state_d, u64::from_le_bytes(*word_d));
    }
    [state_a, state_b, state_c, state_d]
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn crc32c_sse42(crc: u32, bytes: &[u8]) -> u32 {
    let state = u64::from(!crc);
    // A piece of 96 bytes or more (a record's payload): its last two blocks
    // run as streams of their own beside the rest, so the chain of
    // dependent instructions (three cycles each) is ten steps shorter; the
    // three states are then combined by two table shifts.
    if let Some(split_at) = bytes.len().checked_sub(2 * SPLIT_BLOCK_BYTES)
        && split_at >= SPLIT_HEAD_BYTES_MIN
        && let Some(shifts) = SHIFTS.get()
    {
        let (head, blocks) = bytes.split_at(split_at);
        let (words, tail) = head.as_chunks::<8>();
        let (blocks, _) = blocks.as_chunks::<8>();
        let (first, second) = blocks.split_at(SPLIT_BLOCK_WORDS);
        let head_state = crc32c_sse42_finish(crc32c_sse42_words(state, words), tail);
        let first_state = crc32c_sse42_words(0, first);
        let second_state = crc32c_sse42_words(0, second);
        // The instruction leaves the CRC in the low 32 bits.
        #[allow(clippy::cast_possible_truncation)]
        let raw = shifts.two_blocks.apply(head_state)
            ^ shifts.one_block.apply(first_state as u32)
            ^ second_state as u32;
        return !raw;
    }
    let (words, tail) = bytes.as_chunks::<8>();
    !crc32c_sse42_finish(crc32c_sse42_words(state, words), tail)
}

/// Bytes of each of the two blocks at the end of a long piece that
/// [`crc32c_sse42`] runs as streams of their own (whole words).
#[cfg(target_arch = "x86_64")]
const SPLIT_BLOCK_BYTES: usize = 40;
#[cfg(target_arch = "x86_64")]
const SPLIT_BLOCK_WORDS: usize = SPLIT_BLOCK_BYTES / 8;
#[cfg(target_arch = "x86_64")]
const _: () = assert!(SPLIT_BLOCK_BYTES.is_multiple_of(8));
/// The least a piece has before its two blocks for it to be split: below
/// that the streams' combination costs more than it saves.
#[cfg(target_arch = "x86_64")]
const SPLIT_HEAD_BYTES_MIN: usize = 16;

/// What the split CRC32C combines its streams with; built once, by
/// [`init_shifts`] when the kernel is installed.
#[cfg(target_arch = "x86_64")]
static SHIFTS: std::sync::OnceLock<Shifts> = std::sync::OnceLock::new();

/// The shifts of a raw CRC32C state over one and two split blocks.
#[cfg(target_arch = "x86_64")]
struct Shifts {
    one_block: ZeroShift,
    two_blocks: ZeroShift,
}

/// The raw (not inverted) CRC32C state after a fixed number of zero bytes,
/// as a function of the state before them: linear over GF(2), so the
/// XOR of the shifts of its four bytes, each looked up.
#[cfg(target_arch = "x86_64")]
struct ZeroShift([[u32; 256]; 4]);

#[cfg(target_arch = "x86_64")]
impl ZeroShift {
    /// The table for `zeros_bytes` zero bytes, from the `crc32c` crate
    /// (whose states are inverted: hence the `!`s).
    fn new(zeros_bytes: usize) -> Self {
        let zeros = vec![0u8; zeros_bytes];
        let mut table = ZeroShift([[0; 256]; 4]);
        for (byte_index, row) in table.0.iter_mut().enumerate() {
            for (value, entry) in (0u32..).zip(row.iter_mut()) {
                let state = value << (8 * byte_index);
                *entry = !crc32c::crc32c_append(!state, &zeros);
            }
        }
        table
    }

    /// The state after the zero bytes, from `state` before them.
    #[inline]
    fn apply(&self, state: u32) -> u32 {
        let [a, b, c, d] = state.to_le_bytes();
        self.0[0][usize::from(a)]
            ^ self.0[1][usize::from(b)]
            ^ self.0[2][usize::from(c)]
            ^ self.0[3][usize::from(d)]
    }
}

/// Installs [`crc32c_kernel`] in the core (`segwal::install_crc32c_kernel`,
/// which checks it against the tables first), its split path's tables
/// built before, so that the check covers it. After the first call, two
/// atomic loads.
pub(crate) fn install_crc32c_kernel() {
    init_shifts();
    segwal::install_crc32c_kernel(crc32c_kernel());
}

/// Builds the tables the split CRC32C needs; until then it runs one stream.
fn init_shifts() {
    #[cfg(target_arch = "x86_64")]
    SHIFTS.get_or_init(|| Shifts {
        one_block: ZeroShift::new(SPLIT_BLOCK_BYTES),
        two_blocks: ZeroShift::new(2 * SPLIT_BLOCK_BYTES),
    });
}

/// The raw (not inverted) CRC32C state after `words`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
#[inline]
fn crc32c_sse42_words(mut state: u64, words: &[[u8; 8]]) -> u64 {
    for word in words {
        state = std::arch::x86_64::_mm_crc32_u64(state, u64::from_le_bytes(*word));
    }
    state
}

/// The raw state after the last, partial word: 4, 2 and 1 bytes at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
#[inline]
fn crc32c_sse42_finish(state: u64, tail: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u8, _mm_crc32_u16, _mm_crc32_u32};
    // The instruction leaves the CRC in the low 32 bits.
    #[allow(clippy::cast_possible_truncation)]
    let mut state = state as u32;
    let (quads, tail) = tail.as_chunks::<4>();
    for quad in quads {
        state = _mm_crc32_u32(state, u32::from_le_bytes(*quad));
    }
    let (pairs, tail) = tail.as_chunks::<2>();
    for pair in pairs {
        state = _mm_crc32_u16(state, u16::from_le_bytes(*pair));
    }
    for &byte in tail {
        state = _mm_crc32_u8(state, byte);
    }
    state
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
#[inline]
fn crc32c_lanes_sse42(crcs: &mut [u32; segwal::CRC_LANES], pieces: [&[u8]; segwal::CRC_LANES]) {
    use std::arch::x86_64::{_mm_crc32_u8, _mm_crc32_u16, _mm_crc32_u32};
    // Four lanes, written out: each step is then four independent
    // instructions, with no bounds checks. Records of one log are often of
    // one length (the 28-byte prefixes always are), so the bytes all four
    // pieces have, tail included, go side by side; only what one piece has
    // beyond the others goes alone.
    let common_bytes = pieces.iter().map(|piece| piece.len()).min().unwrap_or(0);
    let words_bytes = common_bytes & !7;
    let [a, b, c, d] = pieces;
    let words = [
        a[..words_bytes].as_chunks::<8>().0,
        b[..words_bytes].as_chunks::<8>().0,
        c[..words_bytes].as_chunks::<8>().0,
        d[..words_bytes].as_chunks::<8>().0,
    ];
    let raw = crc32c_words_sse42(crcs.map(|crc| u64::from(!crc)), words);
    // The instruction leaves the CRC in the low 32 bits.
    #[allow(clippy::cast_possible_truncation)]
    let mut states = raw.map(|state| state as u32);
    let mut at = words_bytes;
    if common_bytes - at >= 4 {
        for (state, piece) in states.iter_mut().zip(pieces) {
            let quad = piece[at..].first_chunk::<4>().copied().unwrap_or_default();
            *state = _mm_crc32_u32(*state, u32::from_le_bytes(quad));
        }
        at += 4;
    }
    if common_bytes - at >= 2 {
        for (state, piece) in states.iter_mut().zip(pieces) {
            let pair = piece[at..].first_chunk::<2>().copied().unwrap_or_default();
            *state = _mm_crc32_u16(*state, u16::from_le_bytes(pair));
        }
        at += 2;
    }
    if common_bytes > at {
        for (state, piece) in states.iter_mut().zip(pieces) {
            *state = _mm_crc32_u8(*state, piece[at]);
        }
    }
    for ((crc, state), piece) in crcs.iter_mut().zip(states).zip(pieces) {
        let rest = &piece[common_bytes..];
        *crc = if rest.is_empty() {
            !state
        } else {
            // Long rests to the crate's three streams, as for one piece.
            crc32c_append(!state, rest)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `len_bytes` bytes of a fixed pseudo-random pattern.
    fn pattern(len_bytes: u32) -> Vec<u8> {
        (0..len_bytes)
            .map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes()[2])
            .collect()
    }

    #[test]
    fn the_crc32c_kernel_agrees_with_the_crate_on_every_length_and_alignment() {
        // The split path (long pieces) from here on.
        init_shifts();
        let pattern = pattern(2100);
        for start in 0..8 {
            for len_bytes in (0..1100).chain([2000, 2048]) {
                let bytes = &pattern[start..start + len_bytes];
                for crc in [0, 0xDEAD_BEEF] {
                    assert_eq!(
                        crc32c_append(crc, bytes),
                        crc32c::crc32c_append(crc, bytes),
                        "start {start} len {len_bytes} crc {crc:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_lanes_kernel_agrees_with_the_crate_on_mixed_lengths() {
        let pattern = pattern(1300);
        for len_bytes in 0..300 {
            let pieces = [
                &pattern[..len_bytes],
                &pattern[3..3 + (len_bytes * 7) % 301],
                &pattern[5..5 + len_bytes / 2],
                &pattern[1..1 + len_bytes + 900],
            ];
            let mut crcs = [0, 1, 0xFFFF_FFFF, u32::try_from(len_bytes).expect("small")];
            let expected: Vec<u32> = crcs
                .iter()
                .zip(pieces)
                .map(|(&crc, piece)| crc32c::crc32c_append(crc, piece))
                .collect();
            let mut in_rounds = crcs;
            crc32c_append_lanes(&mut crcs, &[pieces]);
            assert_eq!(crcs.to_vec(), expected, "len {len_bytes}");
            // The same pieces in two rounds, each split at its own point.
            let split: [(&[u8], &[u8]); 4] =
                core::array::from_fn(|lane| pieces[lane].split_at(pieces[lane].len() * lane / 4));
            crc32c_append_lanes(
                &mut in_rounds,
                &[split.map(|(head, _)| head), split.map(|(_, rest)| rest)],
            );
            assert_eq!(
                in_rounds.to_vec(),
                expected,
                "len {len_bytes} in two rounds"
            );
        }
    }

    /// Rounds of whole words of one length (the way without tails, its
    /// states kept raw across rounds), mixed with rounds that are not.
    #[test]
    fn the_lanes_kernel_agrees_with_the_crate_over_rounds_of_whole_words() {
        let pattern = pattern(4096);
        for words in 0..20 {
            let len_bytes = words * 8;
            let whole: [&[u8]; 4] =
                core::array::from_fn(|lane| &pattern[lane * 7..lane * 7 + len_bytes]);
            let ragged: [&[u8]; 4] =
                core::array::from_fn(|lane| &pattern[1000 + lane..1000 + lane + len_bytes + lane]);
            // One length for all, but not whole words.
            let tailed: [&[u8]; 4] =
                core::array::from_fn(|lane| &pattern[2000 + lane..2000 + lane + len_bytes + 4]);
            for rounds in [
                vec![whole, whole],
                vec![whole, ragged, whole],
                vec![ragged, whole, whole],
                vec![whole, tailed, whole],
            ] {
                let mut crcs = [0, 1, 0xFFFF_FFFF, u32::try_from(words).expect("small")];
                let expected: Vec<u32> = (0..4)
                    .map(|lane| {
                        rounds.iter().fold(crcs[lane], |crc, round| {
                            crc32c::crc32c_append(crc, round[lane])
                        })
                    })
                    .collect();
                crc32c_append_lanes(&mut crcs, &rounds);
                assert_eq!(
                    crcs.to_vec(),
                    expected,
                    "{words} words, {} rounds",
                    rounds.len()
                );
            }
        }
    }

    /// A shift table gives the state after its zero bytes, for states with
    /// bits in every byte.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn a_zero_shift_is_the_crc_of_its_zeros() {
        for zeros_bytes in [0, 1, 8, SPLIT_BLOCK_BYTES, 2 * SPLIT_BLOCK_BYTES] {
            let shift = ZeroShift::new(zeros_bytes);
            let zeros = vec![0u8; zeros_bytes];
            for state in [0, 1, 0x80, 0x100, 0xFFFF_FFFF, 0x1234_5678, 0x8000_0001] {
                assert_eq!(
                    shift.apply(state),
                    !crc32c::crc32c_append(!state, &zeros),
                    "{zeros_bytes} zeros, state {state:#x}"
                );
            }
        }
    }

    #[test]
    fn the_core_takes_the_kernel() {
        install_crc32c_kernel();
        assert!(segwal::install_crc32c_kernel(crc32c_kernel()));
        assert_eq!(
            segwal::ChecksumKind::Crc32c.checksum(b"123456789"),
            0xE306_9283
        );
    }
}
