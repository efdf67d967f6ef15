//! The raw baseline of each workload: the least a log could do with the
//! positional system calls, no framing and no checksum except where the
//! workload asks for one (W5). Files are preallocated and zero-filled
//! (`create_zero_filled`) before the clock starts, like a segwal segment.

use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use segwal_benches::rounds::Slices;
use segwal_benches::{create_zero_filled, payload, pread_chunks, segment_paths};
use tempfile::TempDir;

use crate::{
    APPEND_LEN_BYTES, BUILT_LEN_BYTES, SMALL_CAPACITY_BYTES, THREADS, fresh_dir, index_of,
    indexed_payload, timed_threads,
};

/// Bytes of each `pwrite` of W3 and `pread` of W5.
const CHUNK_BYTES: usize = 64 * 1024;
/// Bytes the open baseline reads of each segment: a block holding the
/// header.
pub(crate) const HEADER_BLOCK_BYTES: usize = 4096;

/// A zero-filled file of `size_bytes` in `dir`, with one record written
/// and synced so the first measured write is not the file's first.
fn warm_file(dir: &Path, size_bytes: u64) -> File {
    let file = create_zero_filled(&dir.join("raw"), size_bytes).expect("create raw file");
    file.write_all_at(&payload(APPEND_LEN_BYTES), 0)
        .expect("pwrite");
    file.sync_data().expect("fdatasync");
    file
}

/// W1 and W2: one `pwrite` of `records_per_write` records (128 bytes, or
/// 64 of them: 8 KiB), then `fdatasync`, at increasing offsets of a
/// zero-filled file.
pub(crate) struct SyncedWrites {
    file: File,
    /// Dropped after `file`.
    _dir: TempDir,
    bytes: Vec<u8>,
    offset: u64,
}

impl SyncedWrites {
    /// A fresh zero-filled file, warmed up.
    pub(crate) fn new(records_per_write: usize) -> Self {
        let dir = fresh_dir();
        SyncedWrites {
            file: warm_file(dir.path(), SMALL_CAPACITY_BYTES),
            _dir: dir,
            bytes: payload(records_per_write * APPEND_LEN_BYTES),
            offset: APPEND_LEN_BYTES as u64,
        }
    }

    /// The same writes into a file preallocated with `fallocate` (unwritten
    /// extents, as seglog makes its segments) instead of zero-filled,
    /// warmed up: shows what the kind of preallocation costs `fdatasync`.
    pub(crate) fn new_fallocated(records_per_write: usize) -> Self {
        let dir = fresh_dir();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("raw-fallocated"))
            .expect("create raw file");
        let size = i64::try_from(SMALL_CAPACITY_BYTES).expect("a small file");
        nix::fcntl::fallocate(&file, nix::fcntl::FallocateFlags::empty(), 0, size)
            .expect("fallocate");
        file.sync_all().expect("fsync");
        file.write_all_at(&payload(APPEND_LEN_BYTES), 0)
            .expect("pwrite");
        file.sync_data().expect("fdatasync");
        SyncedWrites {
            file,
            _dir: dir,
            bytes: payload(records_per_write * APPEND_LEN_BYTES),
            offset: APPEND_LEN_BYTES as u64,
        }
    }
}

impl Slices for SyncedWrites {
    fn run(&mut self, writes: u64) -> Duration {
        assert!(
            self.offset + writes * self.bytes.len() as u64 <= SMALL_CAPACITY_BYTES,
            "the file holds the run"
        );
        let start = Instant::now();
        for _ in 0..writes {
            self.file
                .write_all_at(&self.bytes, self.offset)
                .expect("pwrite");
            self.file.sync_data().expect("fdatasync");
            self.offset += self.bytes.len() as u64;
        }
        start.elapsed()
    }
}

/// W3: records copied into a 64 KiB buffer, `pwrite` whenever it is full
/// (and once for the rest), one `fdatasync` at the end.
pub(crate) fn buffered(dir: &Path, records: u64) -> Duration {
    let record = payload(APPEND_LEN_BYTES);
    let size_bytes = crate::buffered_capacity_bytes(records);
    let file = warm_file(dir, size_bytes);
    let mut buffer = Vec::with_capacity(CHUNK_BYTES);
    let mut offset = APPEND_LEN_BYTES as u64;
    let start = Instant::now();
    for _ in 0..records {
        if buffer.len() + record.len() > CHUNK_BYTES {
            file.write_all_at(&buffer, offset).expect("pwrite");
            offset += buffer.len() as u64;
            buffer.clear();
        }
        buffer.extend_from_slice(&record);
    }
    file.write_all_at(&buffer, offset).expect("pwrite");
    file.sync_data().expect("fdatasync");
    let elapsed = start.elapsed();
    assert!(
        offset + buffer.len() as u64 <= size_bytes,
        "the file held the run"
    );
    elapsed
}

/// W4 and W5: the records back to back in one file, and the CRC32C of all
/// of them to check scans against.
pub(crate) struct Reads {
    file: File,
    /// Each record's offset: the raw "handle", looked up per read as the
    /// libraries' handles are.
    offsets: Vec<u64>,
    crc32c: u32,
    buffer: Vec<u8>,
}

impl Reads {
    /// Writes the records (100 bytes each, carrying their index) and syncs.
    pub(crate) fn build(path: &Path, records: u64) -> Self {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .expect("create raw file");
        let mut bytes =
            Vec::with_capacity(usize::try_from(records).expect("fits") * BUILT_LEN_BYTES);
        for index in 0..records {
            bytes.extend_from_slice(&indexed_payload(index));
        }
        file.write_all_at(&bytes, 0).expect("pwrite");
        file.sync_data().expect("fdatasync");
        Reads {
            file,
            offsets: (0..records)
                .map(|index| index * BUILT_LEN_BYTES as u64)
                .collect(),
            crc32c: crc32c::crc32c(&bytes),
            buffer: vec![0u8; CHUNK_BYTES],
        }
    }

    /// W4: a `pread` of each record's 100 bytes at its offset, in `order`.
    pub(crate) fn random_reads(&mut self, order: &[usize]) -> Duration {
        let mut record = [0u8; BUILT_LEN_BYTES];
        let start = Instant::now();
        for &index in order {
            let offset = self.offsets[index];
            self.file.read_exact_at(&mut record, offset).expect("pread");
            assert_eq!(index_of(&record), index as u64, "the right record");
        }
        start.elapsed()
    }

    /// W5: `pread`s of 64 KiB, a hardware CRC32C over them, checked.
    pub(crate) fn scan(&mut self) -> Duration {
        let end = self.offsets.len() as u64 * BUILT_LEN_BYTES as u64;
        let start = Instant::now();
        let mut crc = 0u32;
        pread_chunks(&self.file, 0, end, &mut self.buffer, |chunk| {
            crc = crc32c::crc32c_append(crc, chunk);
        })
        .expect("pread");
        assert_eq!(crc, self.crc32c, "the file reads back");
        start.elapsed()
    }
}

/// W6: the least any open of segwal's log in `dir` must do: list the
/// directory, open every segment for writing and read its header block.
pub(crate) fn open_log(dir: &Path, buffer: &mut [u8]) -> Duration {
    let start = Instant::now();
    let paths = segment_paths(dir);
    for path in &paths {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("open segment file");
        file.read_exact_at(buffer, 0).expect("pread header");
        black_box(&buffer);
    }
    let elapsed = start.elapsed();
    assert!(!paths.is_empty(), "a log to open");
    elapsed
}

/// W7: 4 threads each `pwrite` a record at the next free offset of one
/// file (an atomic counter) and `fdatasync` it, with no other
/// coordination.
pub(crate) struct ThreadWrites {
    file: File,
    /// Dropped after `file`.
    _dir: TempDir,
    record: Vec<u8>,
    next_offset: AtomicU64,
}

impl ThreadWrites {
    /// A fresh file, warmed up.
    pub(crate) fn new() -> Self {
        let dir = fresh_dir();
        ThreadWrites {
            file: warm_file(dir.path(), SMALL_CAPACITY_BYTES),
            _dir: dir,
            record: payload(APPEND_LEN_BYTES),
            next_offset: AtomicU64::new(APPEND_LEN_BYTES as u64),
        }
    }
}

impl Slices for ThreadWrites {
    fn run(&mut self, records: u64) -> Duration {
        let (file, record, next_offset) = (&self.file, &self.record, &self.next_offset);
        let elapsed = timed_threads(THREADS, records, |share| {
            for _ in 0..share {
                let offset = next_offset.fetch_add(record.len() as u64, Ordering::Relaxed);
                file.write_all_at(record, offset).expect("pwrite");
                file.sync_data().expect("fdatasync");
            }
        });
        assert!(
            next_offset.load(Ordering::Relaxed) <= SMALL_CAPACITY_BYTES,
            "the file held the run"
        );
        elapsed
    }
}
