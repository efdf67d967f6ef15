//! Shared helpers for the benchmarks: the raw baselines' files and chunked
//! reads, payloads, the fixed-seed pseudo-random orders of the random-read
//! benchmarks, and ([`rounds`]) the interleaved rounds and medians of the
//! comparison benchmark `peers`.
//!
//! The baselines use std's positional I/O (`FileExt::write_at`,
//! `read_exact_at`, `File::sync_data`): they are the same `pwrite`, `pread`
//! and `fdatasync` system calls as libc's, without the `unsafe` the
//! workspace forbids.

pub mod rounds;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Bytes per `pwrite` when zero-filling a baseline file, as `FileDevice`
/// does for a segment: one page, so that the page cache holds the file in
/// pages rather than large folios (which make every small durable write
/// after it a few percent slower; see `segwal_std::FileDevice`).
const ZERO_CHUNK_BYTES: usize = 4096;

/// Creates a file of `size_bytes` zeros at `path`, written and
/// `fdatasync`ed, like a segwal segment: every block is allocated and
/// written before the benchmark touches it, so neither side pays for
/// extent conversion while measured.
///
/// # Errors
///
/// Any error from creating, writing or syncing the file; `path` must not
/// exist.
pub fn create_zero_filled(path: &Path, size_bytes: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)?;
    let zeros = vec![0u8; ZERO_CHUNK_BYTES];
    let mut done_bytes = 0u64;
    while done_bytes < size_bytes {
        let left_bytes = usize::try_from(size_bytes - done_bytes).unwrap_or(usize::MAX);
        let chunk = &zeros[..left_bytes.min(ZERO_CHUNK_BYTES)];
        file.write_all_at(chunk, done_bytes)?;
        done_bytes += chunk.len() as u64;
    }
    file.sync_data()?;
    Ok(file)
}

/// Reads `[start, end)` of `file` in chunks of `buffer`'s length, handing
/// each to `each_chunk`: the raw side of every scan-shaped benchmark.
///
/// # Errors
///
/// Any error from `pread`, a file shorter than `end` included.
///
/// # Panics
///
/// When `buffer` is empty: the loop would never advance. With a non-empty
/// buffer every pass reads at least one byte, so it ends after at most
/// `end - start` passes.
pub fn pread_chunks(
    file: &File,
    start: u64,
    end: u64,
    buffer: &mut [u8],
    mut each_chunk: impl FnMut(&[u8]),
) -> io::Result<()> {
    assert!(!buffer.is_empty(), "an empty buffer would never advance");
    let mut position = start;
    while position < end {
        let len = usize::try_from(end - position)
            .unwrap_or(usize::MAX)
            .min(buffer.len());
        file.read_exact_at(&mut buffer[..len], position)?;
        each_chunk(&buffer[..len]);
        position += len as u64;
    }
    Ok(())
}

/// `len_bytes` of a fixed non-zero pattern, so a payload never looks blank.
pub fn payload(len_bytes: usize) -> Vec<u8> {
    (0..len_bytes)
        .map(|i| u8::try_from(1 + i % 251).expect("at most 251"))
        .collect()
}

/// Marsaglia's xorshift64: a fixed seed gives the same sequence on every
/// run, so every run reads the same offsets in the same order.
#[derive(Debug, Clone)]
pub struct XorShift64 {
    state: u64,
}

impl XorShift64 {
    /// A generator started at `seed`.
    ///
    /// # Panics
    ///
    /// When `seed` is 0, the one state xorshift never leaves.
    pub const fn new(seed: u64) -> Self {
        assert!(seed != 0, "xorshift is stuck at 0");
        XorShift64 { state: seed }
    }

    /// The next value of the sequence.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }
}

/// `count` offsets drawn from `offsets` in xorshift order from `seed`,
/// computed up front so the measured loop only indexes a slice.
///
/// # Panics
///
/// When `offsets` is empty or `seed` is 0.
pub fn random_order(offsets: &[u64], count: usize, seed: u64) -> Vec<u64> {
    assert!(!offsets.is_empty(), "nothing to draw from");
    let mut rng = XorShift64::new(seed);
    (0..count)
        .map(|_| {
            let index = rng.next_u64() % offsets.len() as u64;
            offsets[usize::try_from(index).expect("below offsets.len()")]
        })
        .collect()
}

/// The indices `0..count` in a fixed-seed pseudo-random order (a
/// Fisher-Yates shuffle driven by xorshift): every index once.
///
/// # Panics
///
/// When `seed` is 0.
pub fn permutation(count: usize, seed: u64) -> Vec<usize> {
    let mut rng = XorShift64::new(seed);
    let mut order: Vec<usize> = (0..count).collect();
    for last in (1..count).rev() {
        let pick = rng.next_u64() % (last as u64 + 1);
        order.swap(last, usize::try_from(pick).expect("at most `last`"));
    }
    order
}

/// Runs `work(share)` on `threads` threads, the shares adding up to
/// `records`, and returns the wall time from their common start (a
/// barrier) to the last one's end. Spawning is not timed.
///
/// # Panics
///
/// When a thread panics.
pub fn timed_threads(
    threads: usize,
    records: u64,
    work: impl Fn(u64) + Sync,
) -> std::time::Duration {
    let barrier = std::sync::Barrier::new(threads + 1);
    let threads_u64 = threads as u64;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads_u64)
            .map(|index| {
                let share = records / threads_u64 + u64::from(index < records % threads_u64);
                let (barrier, work) = (&barrier, &work);
                scope.spawn(move || {
                    barrier.wait();
                    work(share);
                })
            })
            .collect();
        barrier.wait();
        let start = std::time::Instant::now();
        for worker in workers {
            worker.join().expect("appending thread");
        }
        start.elapsed()
    })
}

/// The segment files of the segwal log in `dir`, oldest first.
///
/// # Panics
///
/// When the directory cannot be listed.
pub fn segment_paths(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .expect("list the log")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    // Zero-padded sequence numbers: the name order is the log order.
    paths.sort();
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xorshift_is_deterministic_and_never_zero() {
        let mut a = XorShift64::new(42);
        let mut b = XorShift64::new(42);
        for _ in 0..1000 {
            let value = a.next_u64();
            assert_eq!(value, b.next_u64());
            assert_ne!(value, 0);
        }
    }

    #[test]
    fn permutation_holds_every_index_once() {
        let mut order = permutation(1000, 9);
        assert_ne!(order, (0..1000).collect::<Vec<_>>(), "shuffled");
        order.sort_unstable();
        assert_eq!(order, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn random_order_only_draws_given_offsets() {
        let offsets = [64, 184, 304];
        let order = random_order(&offsets, 100, 7);
        assert_eq!(order.len(), 100);
        assert!(order.iter().all(|o| offsets.contains(o)));
    }
}
