//! Shared helpers for the `wal_*` integration tests of the multi-segment
//! write-ahead log.
//!
//! - One printed seed drives every test ([`seed`]): payloads come from
//!   [`payload`], keyed by the seed and a tag (usually the LSN), so a
//!   failure is reproduced by `SEGWAL_TEST_SEED=<seed>` alone.
//! - [`LogModel`] is the reference a log is checked against: a `VecDeque`
//!   of payloads and the LSN of its first one.
//! - [`LogContents`] is what a log actually holds, read back both by
//!   iteration and by `read(lsn)` ([`ram_contents`], [`std_contents`]),
//!   which must agree.
//! - The RAM helpers open the core [`segwal::Wal`] over a
//!   [`segwal_ram::RamStore`]; the file helpers copy, snapshot and damage
//!   the segment files of a `segwal_std::Wal` directory.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use segwal::{Durability, Lsn, WalConfig};
use segwal_ram::RamStore;
use segwal_std::WalOptions;

/// Segments a RAM log may hold: plenty for the small logs of the tests.
pub const RAM_SEGMENTS_MAX: usize = 256;

/// Size of the read and scan buffer handed to a core log: one sequential
/// read-ahead window, as `segwal-std` uses.
pub const READ_BUFFER_BYTES: usize = 64 * 1024;

pub use crate::RECORD_ALIGN_BYTES;

/// The suffix of a segment file in a `segwal_std` log directory.
pub const SEGMENT_SUFFIX: &str = ".seg";

/// The core log over RAM that the RAM tests drive.
pub type RamWal = segwal::Wal<RamStore, Box<[u8]>, RAM_SEGMENTS_MAX>;

/// The error of [`RamWal`].
pub type RamWalError = segwal::Error<segwal_ram::RamError>;

/// The seed a test runs with; see [`crate::test_seed`].
pub fn seed(default: u64) -> u64 {
    crate::test_seed(default)
}

/// The harness's [`XorShift`](crate::XorShift) with the `u64` ranges the
/// log tests draw LSNs from.
#[derive(Debug, Clone)]
pub struct Rng(crate::XorShift);

impl Rng {
    /// A generator for `seed`; any seed works, 0 included.
    pub fn new(seed: u64) -> Self {
        Rng(crate::XorShift::new(seed))
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A value in `low..=high` (the slight modulo bias does not matter for
    /// test data).
    ///
    /// # Panics
    ///
    /// When `low > high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        assert!(low <= high, "between({low}, {high})");
        match (high - low).checked_add(1) {
            Some(span) => low + self.0.below(span),
            None => self.0.next_u64(),
        }
    }

    /// `true` with probability `percent` / 100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.0.below(100) < percent
    }

    /// Fills `out` with pseudo-random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        self.0.fill(out);
    }
}

/// The length [`payload`] gives tag `tag` under `seed`: `(tag * 7 + seed)
/// % 300` bytes, so lengths cycle through empty, small and a few hundred
/// bytes, and another seed moves every segment boundary.
pub fn payload_len(seed: u64, tag: u64) -> usize {
    usize::try_from(tag.wrapping_mul(7).wrapping_add(seed % 300) % 300).expect("below 300")
}

/// The payload of tag `tag` (usually an LSN) in a run with `seed`:
/// [`payload_len`] pseudo-random bytes that differ from every other tag's.
pub fn payload(seed: u64, tag: u64) -> Vec<u8> {
    payload_with_len(seed, tag, payload_len(seed, tag))
}

/// As [`payload`], with the length chosen by the caller.
pub fn payload_with_len(seed: u64, tag: u64, len_bytes: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed ^ tag.wrapping_mul(0xA076_1D64_78BD_642F) ^ 0x5EED);
    let mut out = vec![0u8; len_bytes];
    rng.fill(&mut out);
    out
}

pub use crate::extent;

/// The reference model of a log: the payloads of `first_lsn..next_lsn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogModel {
    /// LSN of `records[0]`.
    pub first_lsn: u64,
    /// Payloads in LSN order.
    pub records: VecDeque<Vec<u8>>,
}

impl Default for LogModel {
    fn default() -> Self {
        Self::new()
    }
}

impl LogModel {
    /// An empty log: first and next LSN both 1.
    pub fn new() -> Self {
        LogModel {
            first_lsn: segwal::FIRST_LSN,
            records: VecDeque::new(),
        }
    }

    /// The LSN the next append gets.
    pub fn next_lsn(&self) -> u64 {
        self.first_lsn + self.records.len() as u64
    }

    /// Appends `payload` and returns its LSN.
    pub fn append(&mut self, payload: Vec<u8>) -> u64 {
        let lsn = self.next_lsn();
        self.records.push_back(payload);
        lsn
    }

    /// The payload at `lsn`, if the log holds it.
    pub fn get(&self, lsn: u64) -> Option<&[u8]> {
        let index = usize::try_from(lsn.checked_sub(self.first_lsn)?).ok()?;
        self.records.get(index).map(Vec::as_slice)
    }

    /// Drops every record below `first_lsn` (a checkpoint that removed
    /// whole segments).
    ///
    /// # Panics
    ///
    /// When `first_lsn` moves back or past the next LSN.
    pub fn drop_before(&mut self, first_lsn: u64) {
        assert!(
            self.first_lsn <= first_lsn && first_lsn <= self.next_lsn(),
            "first LSN {first_lsn} outside {}..={}",
            self.first_lsn,
            self.next_lsn()
        );
        while self.first_lsn < first_lsn {
            self.records.pop_front();
            self.first_lsn += 1;
        }
    }

    /// Drops every record after `lsn`.
    ///
    /// # Panics
    ///
    /// Unless `first_lsn - 1 <= lsn < next_lsn`.
    pub fn truncate_after(&mut self, lsn: u64) {
        assert!(
            lsn + 1 >= self.first_lsn && lsn < self.next_lsn(),
            "truncate_after({lsn}) outside the model"
        );
        let keep = usize::try_from(lsn + 1 - self.first_lsn).expect("fits");
        self.records.truncate(keep);
    }

    /// The model as the contents a log should read back.
    pub fn contents(&self) -> LogContents {
        LogContents {
            first_lsn: self.first_lsn,
            next_lsn: self.next_lsn(),
            records: self.records.iter().cloned().collect(),
        }
    }
}

/// What a log holds, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogContents {
    /// The log's first LSN.
    pub first_lsn: u64,
    /// The LSN the next append gets.
    pub next_lsn: u64,
    /// The payloads of `first_lsn..next_lsn`, in order.
    pub records: Vec<Vec<u8>>,
}

impl LogContents {
    /// The payload at `lsn`, if the log holds it.
    pub fn get(&self, lsn: u64) -> Option<&[u8]> {
        let index = usize::try_from(lsn.checked_sub(self.first_lsn)?).ok()?;
        self.records.get(index).map(Vec::as_slice)
    }

    /// Panics unless `self` equals `expected`, naming the first difference
    /// (a plain `assert_eq!` would print every payload).
    pub fn assert_matches(&self, expected: &LogContents, context: &str) {
        assert_eq!(
            (self.first_lsn, self.next_lsn),
            (expected.first_lsn, expected.next_lsn),
            "{context}: (first_lsn, next_lsn)"
        );
        for (index, (got, want)) in self.records.iter().zip(&expected.records).enumerate() {
            let lsn = self.first_lsn + index as u64;
            assert!(
                got == want,
                "{context}: payload of LSN {lsn} differs ({} bytes read, {} expected)",
                got.len(),
                want.len()
            );
        }
        assert_eq!(
            self.records.len(),
            expected.records.len(),
            "{context}: record count"
        );
    }
}

/// The configuration the RAM tests use: `segment_size_bytes` segments,
/// every append synced before it returns.
pub fn ram_config(segment_size_bytes: u32) -> WalConfig {
    WalConfig {
        segment_size_bytes,
        durability: Durability::Sync,
        ..WalConfig::default()
    }
}

/// Opens a core log over `store` with a [`READ_BUFFER_BYTES`] buffer.
///
/// # Errors
///
/// Whatever [`segwal::Wal::open`] returns.
pub fn open_ram(store: RamStore, config: WalConfig) -> Result<RamWal, RamWalError> {
    segwal::Wal::open(
        store,
        config,
        vec![0u8; READ_BUFFER_BYTES].into_boxed_slice(),
    )
}

/// Reads every record of a RAM log by iteration and by `read(lsn)`.
///
/// # Errors
///
/// The first read that fails.
///
/// # Panics
///
/// When iteration yields LSNs that are not dense from `first_lsn` to
/// `next_lsn`, or when `read` and iteration disagree.
pub fn ram_contents(wal: &mut RamWal) -> Result<LogContents, RamWalError> {
    let (first_lsn, next_lsn) = (wal.first_lsn().0, wal.next_lsn().0);
    let mut records = Vec::new();
    let mut iter = wal.iter();
    while let Some(item) = iter.next_record() {
        let (lsn, payload) = item?;
        assert_eq!(
            lsn.0,
            first_lsn + records.len() as u64,
            "iteration skipped or repeated an LSN"
        );
        records.push(payload.to_vec());
    }
    assert_eq!(
        first_lsn + records.len() as u64,
        next_lsn,
        "iteration ended before next_lsn"
    );
    for (index, want) in records.iter().enumerate() {
        let lsn = first_lsn + index as u64;
        let got = wal.read(Lsn(lsn))?;
        assert!(*got == want[..], "read({lsn}) differs from iteration");
    }
    Ok(LogContents {
        first_lsn,
        next_lsn,
        records,
    })
}

/// Options for a file log in the tests: `segment_size_bytes` segments,
/// every append fdatasync'd before it returns.
pub fn std_options(segment_size_bytes: u64) -> WalOptions {
    WalOptions {
        segment_size_bytes,
        durability: Durability::Sync,
        ..WalOptions::default()
    }
}

/// Reads every record of a file log by iteration and by `read(lsn)`.
///
/// # Errors
///
/// The first read that fails.
///
/// # Panics
///
/// As for [`ram_contents`].
pub fn std_contents(wal: &mut segwal_std::Wal) -> segwal_std::Result<LogContents> {
    let (first_lsn, next_lsn) = (wal.first_lsn().0, wal.next_lsn().0);
    let mut records = Vec::new();
    for item in wal.iter() {
        let (lsn, payload) = item?;
        assert_eq!(
            lsn.0,
            first_lsn + records.len() as u64,
            "iteration skipped or repeated an LSN"
        );
        records.push(payload);
    }
    assert_eq!(
        first_lsn + records.len() as u64,
        next_lsn,
        "iteration ended before next_lsn"
    );
    for (index, want) in records.iter().enumerate() {
        let lsn = first_lsn + index as u64;
        assert!(
            wal.read(Lsn(lsn))? == *want,
            "read({lsn}) differs from iteration"
        );
    }
    Ok(LogContents {
        first_lsn,
        next_lsn,
        records,
    })
}

/// The file name `segwal_std` gives segment `sequence`.
pub fn segment_file_name(sequence: u64) -> String {
    format!("{sequence:020}{SEGMENT_SUFFIX}")
}

/// The segment files of a log directory, sorted by name (and so by
/// sequence).
///
/// # Panics
///
/// When the directory cannot be listed.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.ends_with(SEGMENT_SUFFIX))
        })
        .collect();
    files.sort();
    files
}

/// Every file of a directory, by name, with its bytes: what "nothing was
/// written" is checked against.
///
/// # Panics
///
/// When the directory or a file cannot be read.
pub fn snapshot_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("directory entry").path();
            let name = path
                .file_name()
                .and_then(|name| name.to_str())
                .expect("utf-8 name")
                .to_owned();
            let bytes = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            (name, bytes)
        })
        .collect()
}

/// The segment files of a directory, by name, with their bytes.
///
/// # Panics
///
/// As for [`snapshot_dir`].
pub fn snapshot_segments(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = snapshot_dir(dir);
    files.retain(|name, _| name.ends_with(SEGMENT_SUFFIX));
    files
}

/// Writes `files` (as [`snapshot_dir`] returns them) into the existing
/// directory `to`.
///
/// # Panics
///
/// When a write fails.
pub fn restore(files: &BTreeMap<String, Vec<u8>>, to: &Path) {
    for (name, bytes) in files {
        let path = to.join(name);
        fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

/// Copies the segment files of `from` into the existing directory `to`:
/// what a power cut that lost nothing in the page cache would leave,
/// taken while the writer in `from` still runs (no clean-close marker).
///
/// # Panics
///
/// When a copy fails.
pub fn copy_segments(from: &Path, to: &Path) {
    for path in segment_files(from) {
        let name = path.file_name().expect("file name");
        fs::copy(&path, to.join(name)).unwrap_or_else(|e| panic!("copy {}: {e}", path.display()));
    }
}

/// Writes `bytes` into the file at `path` at `offset`, in place.
///
/// # Panics
///
/// When the file cannot be written.
pub fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let file = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    file.write_all_at(bytes, offset)
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Offset just past the last record of segment `segment` of a file log
/// whose records are `payload_lens` (by LSN, from the segment's base):
/// where the next append to it goes.
pub fn records_end(
    segment: &segwal::SegmentInfo,
    payload_lens: impl Iterator<Item = usize>,
) -> u64 {
    u64::from(segment.header.records_start()) + payload_lens.map(extent).sum::<u64>()
}

/// `true` when `needle` occurs anywhere in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}
