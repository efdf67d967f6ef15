//! Append benchmarks: segwal's `Writer::append` against a raw `pwrite` of
//! the same 128-byte payload at increasing offsets, buffered (no sync) and
//! with one `fdatasync` per record. Each group holds segwal and its
//! baseline, so their ratio comes from one run.
//!
//! Both sides write into preallocated, zero-filled files (segwal's from
//! `Writer::create`, the baseline's from `create_zero_filled`) under the
//! target directory, on a real disk, so `fdatasync` reaches the device.
//! When a file cannot take the next record it is replaced by a fresh one
//! outside the timed part (`iter_custom`): no measurement ever sees a full
//! segment, and the old file is deleted so its dirty pages are dropped, not
//! written back behind the next measurement.
//!
//! segwal writes 144 bytes per record (a 16-byte header, the payload, no
//! padding at 8-byte alignment) in one `pwritev`; the baseline writes the
//! bare 128 bytes in one `pwrite`.

use std::fs::File;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use segwal::format::{RECORD_ALIGN_MIN_BYTES, record_extent_bytes};
use segwal_benches::{create_zero_filled, payload};
use segwal_std::Writer;
use tempfile::TempDir;

/// Payload of every record.
const PAYLOAD_LEN_BYTES: u32 = 128;

/// Files of the buffered benchmark: ~466,000 records each, so a rotation
/// (about 0.1 s to zero-fill and sync) comes once per ~0.5 s of appends.
const BUFFERED_FILE_SIZE_BYTES: u64 = 64 << 20;

/// Files of the synced benchmark: ~29,000 records each, far more than a
/// few seconds of `fdatasync`s, and quick to create.
const SYNCED_FILE_SIZE_BYTES: u64 = 4 << 20;

/// What both sides of an append benchmark do: append one payload, sync,
/// and say how many more records fit before a new file is needed.
trait AppendTarget {
    /// Records that still fit in the current file.
    fn room_records(&self) -> u64;
    /// Replaces the current file with a fresh, zero-filled one.
    fn rotate(&mut self);
    /// Appends one record (measured).
    fn append(&mut self, payload: &[u8]);
    /// Makes the appended records durable (measured).
    fn sync(&mut self);
}

/// segwal: one `Writer` over a preallocated segment file.
struct SegwalTarget {
    dir: PathBuf,
    file_size_bytes: u64,
    files_created: u64,
    writer: Writer,
}

impl SegwalTarget {
    fn new(dir: &Path, file_size_bytes: u64) -> Self {
        let path = dir.join("segwal-0");
        let writer = Writer::create(&path, file_size_bytes, 0).expect("create segment");
        SegwalTarget {
            dir: dir.to_path_buf(),
            file_size_bytes,
            files_created: 1,
            writer,
        }
    }
}

impl AppendTarget for SegwalTarget {
    fn room_records(&self) -> u64 {
        let extent_bytes = record_extent_bytes(PAYLOAD_LEN_BYTES, RECORD_ALIGN_MIN_BYTES);
        self.writer.remaining_bytes() / extent_bytes
    }

    fn rotate(&mut self) {
        // Unlinked now, freed when the old writer drops below.
        std::fs::remove_file(self.writer.path()).expect("remove old segment");
        let path = self.dir.join(format!("segwal-{}", self.files_created));
        self.writer = Writer::create(&path, self.file_size_bytes, 0).expect("create segment");
        self.files_created += 1;
    }

    fn append(&mut self, payload: &[u8]) {
        black_box(self.writer.append(payload).expect("append"));
    }

    fn sync(&mut self) {
        black_box(self.writer.sync().expect("sync"));
    }
}

/// The baseline: `pwrite`s of the bare payload into a zero-filled file.
struct RawTarget {
    dir: PathBuf,
    file_size_bytes: u64,
    files_created: u64,
    path: PathBuf,
    file: File,
    offset: u64,
}

impl RawTarget {
    fn new(dir: &Path, file_size_bytes: u64) -> Self {
        let path = dir.join("raw-0");
        let file = create_zero_filled(&path, file_size_bytes).expect("create raw file");
        RawTarget {
            dir: dir.to_path_buf(),
            file_size_bytes,
            files_created: 1,
            path,
            file,
            offset: 0,
        }
    }
}

impl AppendTarget for RawTarget {
    fn room_records(&self) -> u64 {
        (self.file_size_bytes - self.offset) / u64::from(PAYLOAD_LEN_BYTES)
    }

    fn rotate(&mut self) {
        std::fs::remove_file(&self.path).expect("remove old raw file");
        self.path = self.dir.join(format!("raw-{}", self.files_created));
        self.file = create_zero_filled(&self.path, self.file_size_bytes).expect("create raw file");
        self.files_created += 1;
        self.offset = 0;
    }

    fn append(&mut self, payload: &[u8]) {
        let written_bytes = self.file.write_at(payload, self.offset).expect("pwrite");
        assert_eq!(written_bytes, payload.len(), "short pwrite");
        self.offset += payload.len() as u64;
    }

    fn sync(&mut self) {
        self.file.sync_data().expect("fdatasync");
    }
}

/// Times `iters` appends (each followed by a sync when `sync` is set),
/// rotating files outside the timed spans whenever the next record would
/// not fit. Every pass of the loop appends at least one record, so it ends.
fn timed_appends<T: AppendTarget>(
    target: &mut T,
    iters: u64,
    payload: &[u8],
    sync: bool,
) -> Duration {
    let mut elapsed = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        if target.room_records() == 0 {
            target.rotate();
            assert!(target.room_records() > 0, "a fresh file takes a record");
        }
        let batch = left.min(target.room_records());
        let start = Instant::now();
        for _ in 0..batch {
            target.append(payload);
            if sync {
                target.sync();
            }
        }
        elapsed += start.elapsed();
        left -= batch;
    }
    elapsed
}

/// A fresh directory under the target directory: a real disk, unlike a
/// `/tmp` that may be tmpfs, where `fdatasync` would cost nothing.
fn bench_dir() -> TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("bench dir")
}

fn append_buffered(c: &mut Criterion) {
    let dir = bench_dir();
    let payload = payload(PAYLOAD_LEN_BYTES as usize);
    let mut group = c.benchmark_group("append_128B_buffered");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut segwal = SegwalTarget::new(dir.path(), BUFFERED_FILE_SIZE_BYTES);
    group.bench_function("segwal_append", |b| {
        b.iter_custom(|iters| timed_appends(&mut segwal, iters, &payload, false));
    });
    drop(segwal);
    let mut raw = RawTarget::new(dir.path(), BUFFERED_FILE_SIZE_BYTES);
    group.bench_function("raw_pwrite", |b| {
        b.iter_custom(|iters| timed_appends(&mut raw, iters, &payload, false));
    });
    group.finish();
}

fn append_synced(c: &mut Criterion) {
    let dir = bench_dir();
    let payload = payload(PAYLOAD_LEN_BYTES as usize);
    let mut group = c.benchmark_group("append_128B_fdatasync");
    // fdatasync takes 0.1 to several ms: few, flat samples keep this short.
    group
        .throughput(Throughput::Elements(1))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut segwal = SegwalTarget::new(dir.path(), SYNCED_FILE_SIZE_BYTES);
    group.bench_function("segwal_append_sync", |b| {
        b.iter_custom(|iters| timed_appends(&mut segwal, iters, &payload, true));
    });
    drop(segwal);
    let mut raw = RawTarget::new(dir.path(), SYNCED_FILE_SIZE_BYTES);
    group.bench_function("raw_pwrite_fdatasync", |b| {
        b.iter_custom(|iters| timed_appends(&mut raw, iters, &payload, true));
    });
    group.finish();
}

// `main` is written out: `criterion_group!` would generate an undocumented
// `pub fn`, which `missing_docs` (denied workspace-wide) rejects.
fn main() {
    let mut criterion = Criterion::default().without_plots().configure_from_args();
    append_buffered(&mut criterion);
    append_synced(&mut criterion);
    criterion.final_summary();
}
