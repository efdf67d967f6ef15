//! Log-level benchmarks of `segwal_std::Wal` and `SharedWal`, each group
//! holding segwal and a raw baseline so their ratio comes from one run:
//!
//! - `wal_append_128B_fdatasync`: `Wal::append` with `Durability::Sync`
//!   against a raw `pwrite` of the 128-byte payload and an `fdatasync`, at
//!   increasing offsets of a zero-filled file.
//! - `wal_append_batch_64x128B_fdatasync`: `Wal::append_batch` of 64
//!   records against one raw `pwrite` of their 8 KiB and an `fdatasync`;
//!   throughput in records.
//! - `wal_append_128B_threads`: `SharedWal::append` from 4 threads (group
//!   commit) against the single-thread `Wal::append` (`segwal_wal/1`),
//!   `SharedWal` from 1 thread, 4 raw threads each doing `pwrite` +
//!   `fdatasync`, and the ceiling of any group commit of 4 writers (one
//!   thread writing 4 records with one `pwrite` and one `fdatasync`);
//!   every rate in records per second, all sides durable per record.
//! - `wal_open_clean`: `Wal::open` and drop of a cleanly closed log of 10
//!   million records of 100 bytes (1.2 GB in 18 segments) and of one of
//!   100,000, against listing the directory and reading every segment's
//!   header: open time should grow with the segments (one header each),
//!   not with the records.
//! - `wal_verify_10M`: `Wal::verify` over the 10-million-record log, in
//!   bytes per second of records, against raw `pread`s of the same files
//!   in 64 KiB chunks with one CRC32C over the record bytes.
//!
//! The appending groups write into fresh logs under the target directory
//! (a real disk: `fdatasync` reaches the device) with 64 MiB segments and
//! no preparation of the next segment: when the active segment cannot
//! take the next sample's records, a fresh log replaces it outside the
//! timed span (`iter_custom`), as `append.rs` replaces its files. No
//! measurement pays for a rotation, and no background zero-fill of a
//! prepared segment competes with the measured `fdatasync`s; the raw
//! baselines do not pay for creating their files either.
//!
//! The two logs of the open and verify groups are built once, with
//! `Durability::Manual` and batches of 1,000, and kept under the target
//! directory: a later run reuses a log that opens with the right record
//! count. An unmeasured verify pass first reads the whole large log into
//! the page cache (1.2 GB, which must fit in free memory), so verify
//! measures checking, not the disk.

use std::fs::{self, File, OpenOptions};
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crc::{CRC_32_ISCSI, Crc, Table};
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, measurement::WallTime,
};
use segwal::format::record_extent_bytes;
use segwal::{Durability, SegmentHeader, WalTailState};
use segwal_benches::{create_zero_filled, payload, pread_chunks, segment_paths, timed_threads};
use segwal_std::{SharedWal, Wal, WalOptions};
use tempfile::TempDir;

/// Payload of every appended record.
const APPEND_LEN_BYTES: usize = 128;
/// Records per `append_batch`.
const BATCH_RECORDS: usize = 64;
/// Appending threads of the group-commit benchmark.
const THREADS: usize = 4;
/// Segments of the appending logs, and files of their baselines: the
/// default, ~466,000 records of 128 bytes.
const SEGMENT_SIZE_BYTES: u64 = 64 << 20;

/// Records of the large log: 1.2 GB of 120-byte records.
const LARGE_LOG_RECORDS: u64 = 10_000_000;
/// Records of the small log: one segment.
const SMALL_LOG_RECORDS: u64 = 100_000;
/// Payload of the records of the built logs.
const BUILT_LEN_BYTES: usize = 100;
/// Records per `append_batch` while building a log.
const BUILD_BATCH_RECORDS: u64 = 1000;
/// Read size of the raw verify baseline: segwal's sequential window.
const SCAN_CHUNK_BYTES: usize = 64 * 1024;
/// Bytes the raw open baseline reads of each segment: a block holding the
/// header.
const HEADER_BLOCK_BYTES: usize = 4096;

/// CRC32C with the slice-by-16 tables segwal uses on hosts.
static CRC32C: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_ISCSI);

/// A fresh directory under the target directory: a real disk, unlike a
/// `/tmp` that may be tmpfs, where `fdatasync` would cost nothing.
fn bench_dir() -> TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("bench dir")
}

/// Options of the appending logs: durable appends, and no segment made
/// ahead (see the module comment).
fn append_options() -> WalOptions {
    WalOptions {
        segment_size_bytes: SEGMENT_SIZE_BYTES,
        durability: Durability::Sync,
        prepare_next_segment: false,
        ..WalOptions::default()
    }
}

/// Records of `len_bytes` that fit in a fresh segment with `header`.
fn records_per_segment(header: &SegmentHeader, len_bytes: usize) -> u64 {
    let len_bytes = u32::try_from(len_bytes).expect("a small payload");
    let extent_bytes = record_extent_bytes(len_bytes, header.record_align_bytes());
    u64::from(header.segment_size_bytes - header.records_start()) / extent_bytes
}

/// The newest segment's header: an open log always has one.
fn active_header(wal: &Wal) -> SegmentHeader {
    wal.segments()
        .last()
        .expect("an open log has a segment")
        .header
}

/// What every side of an appending benchmark does, one iteration being
/// one record or one batch, whatever the side.
trait AppendTarget {
    /// Iterations that still fit before a fresh log or file is needed.
    fn room_iters(&self) -> u64;
    /// Replaces the log or file with a fresh one (not measured).
    fn renew(&mut self);
    /// Runs `iters` iterations, which fit, and returns their wall time.
    fn run(&mut self, iters: u64) -> Duration;
}

/// Times `iters` iterations, renewing the target outside the timed spans
/// whenever the rest would not fit. Every pass runs at least one
/// iteration, so the loop ends.
fn timed<T: AppendTarget>(target: &mut T, iters: u64) -> Duration {
    let mut elapsed = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        if target.room_iters() == 0 {
            target.renew();
            assert!(target.room_iters() > 0, "a fresh target takes an iteration");
        }
        let count = left.min(target.room_iters());
        elapsed += target.run(count);
        left -= count;
    }
    elapsed
}

/// segwal: one durable `Wal`, appending one record or one batch per
/// iteration.
struct WalTarget {
    wal: Wal,
    /// Dropped after `wal`, which closes into it.
    _dir: TempDir,
    records_per_iter: usize,
    room_records: u64,
}

impl WalTarget {
    fn new(records_per_iter: usize) -> Self {
        let dir = bench_dir();
        let wal = Wal::open_with(dir.path(), &append_options()).expect("open log");
        let room_records = records_per_segment(&active_header(&wal), APPEND_LEN_BYTES);
        WalTarget {
            wal,
            _dir: dir,
            records_per_iter,
            room_records,
        }
    }
}

impl AppendTarget for WalTarget {
    fn room_iters(&self) -> u64 {
        self.room_records / self.records_per_iter as u64
    }

    fn renew(&mut self) {
        *self = WalTarget::new(self.records_per_iter);
    }

    fn run(&mut self, iters: u64) -> Duration {
        let payload = payload(APPEND_LEN_BYTES);
        let batch = vec![payload.as_slice(); self.records_per_iter];
        let start = Instant::now();
        if self.records_per_iter == 1 {
            for _ in 0..iters {
                black_box(self.wal.append(&payload).expect("append"));
            }
        } else {
            for _ in 0..iters {
                black_box(self.wal.append_batch(&batch).expect("append_batch"));
            }
        }
        let elapsed = start.elapsed();
        self.room_records -= iters * self.records_per_iter as u64;
        elapsed
    }
}

/// The baseline: `pwrite`s of `write_len_bytes` at increasing offsets of
/// a zero-filled file, each followed by an `fdatasync`.
struct RawTarget {
    file: File,
    /// Dropped after `file`.
    _dir: TempDir,
    write_len_bytes: usize,
    offset: u64,
}

impl RawTarget {
    fn new(write_len_bytes: usize) -> Self {
        let dir = bench_dir();
        let file = create_zero_filled(&dir.path().join("raw"), SEGMENT_SIZE_BYTES)
            .expect("create raw file");
        RawTarget {
            file,
            _dir: dir,
            write_len_bytes,
            offset: 0,
        }
    }
}

impl AppendTarget for RawTarget {
    fn room_iters(&self) -> u64 {
        (SEGMENT_SIZE_BYTES - self.offset) / self.write_len_bytes as u64
    }

    fn renew(&mut self) {
        *self = RawTarget::new(self.write_len_bytes);
    }

    fn run(&mut self, iters: u64) -> Duration {
        let bytes = payload(self.write_len_bytes);
        let start = Instant::now();
        for _ in 0..iters {
            self.file.write_all_at(&bytes, self.offset).expect("pwrite");
            self.file.sync_data().expect("fdatasync");
            self.offset += bytes.len() as u64;
        }
        start.elapsed()
    }
}

/// segwal: a `SharedWal` appended to from `threads` threads, one record
/// per iteration, each durable when its `append` returns.
struct SharedTarget {
    wal: SharedWal,
    /// Dropped after `wal`, which closes into it.
    _dir: TempDir,
    threads: usize,
    room_records: u64,
}

impl SharedTarget {
    fn new(threads: usize) -> Self {
        let dir = bench_dir();
        let wal = SharedWal::open(dir.path(), &append_options()).expect("open shared log");
        // A fresh log's only segment, laid out as the single-thread log's.
        let probe = Wal::open_read_only(dir.path()).expect("read the fresh log");
        let room_records = records_per_segment(&active_header(&probe), APPEND_LEN_BYTES);
        SharedTarget {
            wal,
            _dir: dir,
            threads,
            room_records,
        }
    }
}

impl AppendTarget for SharedTarget {
    fn room_iters(&self) -> u64 {
        self.room_records
    }

    fn renew(&mut self) {
        *self = SharedTarget::new(self.threads);
    }

    fn run(&mut self, iters: u64) -> Duration {
        let payload = payload(APPEND_LEN_BYTES);
        let wal = &self.wal;
        let elapsed = timed_threads(self.threads, iters, |share| {
            for _ in 0..share {
                black_box(wal.append(&payload).expect("shared append"));
            }
        });
        self.room_records -= iters;
        elapsed
    }
}

/// The baseline of the threads: each `pwrite`s its record at the next free
/// offset of one zero-filled file and `fdatasync`s it, with no
/// coordination beyond the offset counter.
struct RawThreadsTarget {
    file: File,
    /// Dropped after `file`.
    _dir: TempDir,
    threads: usize,
    next_offset: AtomicU64,
}

impl RawThreadsTarget {
    fn new(threads: usize) -> Self {
        let dir = bench_dir();
        let file = create_zero_filled(&dir.path().join("raw"), SEGMENT_SIZE_BYTES)
            .expect("create raw file");
        RawThreadsTarget {
            file,
            _dir: dir,
            threads,
            next_offset: AtomicU64::new(0),
        }
    }
}

impl AppendTarget for RawThreadsTarget {
    fn room_iters(&self) -> u64 {
        (SEGMENT_SIZE_BYTES - self.next_offset.load(Ordering::Relaxed)) / APPEND_LEN_BYTES as u64
    }

    fn renew(&mut self) {
        *self = RawThreadsTarget::new(self.threads);
    }

    fn run(&mut self, iters: u64) -> Duration {
        let bytes = payload(APPEND_LEN_BYTES);
        let (file, next_offset) = (&self.file, &self.next_offset);
        timed_threads(self.threads, iters, |share| {
            for _ in 0..share {
                let offset = next_offset.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                file.write_all_at(&bytes, offset).expect("pwrite");
                file.sync_data().expect("fdatasync");
            }
        })
    }
}

/// Settings of the groups whose iterations each wait for an `fdatasync`
/// (~80 µs to several ms): few, flat samples keep them short.
fn durable_group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group
}

fn append_synced(c: &mut Criterion) {
    let mut group = durable_group(c, "wal_append_128B_fdatasync");
    group.throughput(Throughput::Elements(1));
    let mut segwal = WalTarget::new(1);
    group.bench_function("segwal_wal_append", |b| {
        b.iter_custom(|iters| timed(&mut segwal, iters));
    });
    drop(segwal);
    let mut raw = RawTarget::new(APPEND_LEN_BYTES);
    group.bench_function("raw_pwrite_fdatasync", |b| {
        b.iter_custom(|iters| timed(&mut raw, iters));
    });
    group.finish();
}

fn append_batch_synced(c: &mut Criterion) {
    let mut group = durable_group(c, "wal_append_batch_64x128B_fdatasync");
    group.throughput(Throughput::Elements(BATCH_RECORDS as u64));
    let mut segwal = WalTarget::new(BATCH_RECORDS);
    group.bench_function("segwal_wal_append_batch", |b| {
        b.iter_custom(|iters| timed(&mut segwal, iters));
    });
    drop(segwal);
    let mut raw = RawTarget::new(BATCH_RECORDS * APPEND_LEN_BYTES);
    group.bench_function("raw_pwrite_8KiB_fdatasync", |b| {
        b.iter_custom(|iters| timed(&mut raw, iters));
    });
    group.finish();
}

fn append_threads(c: &mut Criterion) {
    let mut group = durable_group(c, "wal_append_128B_threads");
    group.throughput(Throughput::Elements(1));
    let mut single = WalTarget::new(1);
    group.bench_function(BenchmarkId::new("segwal_wal", 1), |b| {
        b.iter_custom(|iters| timed(&mut single, iters));
    });
    drop(single);
    for threads in [1, THREADS] {
        let mut shared = SharedTarget::new(threads);
        group.bench_function(BenchmarkId::new("segwal_shared_wal", threads), |b| {
            b.iter_custom(|iters| timed(&mut shared, iters));
        });
    }
    let mut raw = RawThreadsTarget::new(THREADS);
    group.bench_function(BenchmarkId::new("raw_pwrite_fdatasync", THREADS), |b| {
        b.iter_custom(|iters| timed(&mut raw, iters));
    });
    drop(raw);
    // The ceiling of any group commit of THREADS writers: their records
    // written by one `pwrite` and covered by one `fdatasync`, with no
    // waiting for anyone.
    group.throughput(Throughput::Elements(THREADS as u64));
    let mut ceiling = RawTarget::new(THREADS * APPEND_LEN_BYTES);
    group.bench_function(
        BenchmarkId::new("raw_group_pwrite_fdatasync", THREADS),
        |b| {
            b.iter_custom(|iters| timed(&mut ceiling, iters));
        },
    );
    group.finish();
}

/// A cleanly closed log of `records` records of 100 bytes, each carrying
/// its index, under the target directory: reused when one opens with that
/// many records, else built (and the time it took printed).
fn built_log(records: u64) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("wal-bench")
        .join(format!("log-{records}x{BUILT_LEN_BYTES}B"));
    let start = Instant::now();
    if dir.exists() {
        let wal = Wal::open(&dir).expect("open the kept log");
        let found = wal.next_lsn().0 - wal.first_lsn().0;
        let clean = wal.tail_state() == WalTailState::Clean;
        // Dropping closes: a log that opened by scanning gets its marker.
        drop(wal);
        if found == records && clean {
            println!(
                "log of {records} records reused from {} (checked in {:.2?})",
                dir.display(),
                start.elapsed()
            );
            return dir;
        }
        println!("log at {} holds {found} records: rebuilding", dir.display());
        fs::remove_dir_all(&dir).expect("remove the stale log");
    }
    let options = WalOptions {
        durability: Durability::Manual,
        ..WalOptions::default()
    };
    let mut wal = Wal::open_with(&dir, &options).expect("create log");
    let batch_len = usize::try_from(BUILD_BATCH_RECORDS).expect("fits memory");
    let mut payloads = vec![payload(BUILT_LEN_BYTES); batch_len];
    let mut index = 0u64;
    while index < records {
        let count = BUILD_BATCH_RECORDS.min(records - index);
        let batch = &mut payloads[..usize::try_from(count).expect("at most a batch")];
        for (offset, record) in (0u64..).zip(batch.iter_mut()) {
            record[..8].copy_from_slice(&(index + offset).to_le_bytes());
        }
        let slices: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        wal.append_batch(&slices).expect("append_batch");
        index += count;
    }
    wal.sync().expect("sync");
    let segments = wal.segment_count();
    wal.close().expect("close");
    println!(
        "log of {records} records in {segments} segments built at {} in {:.2?}",
        dir.display(),
        start.elapsed()
    );
    dir
}

/// The baseline of open: the least any open of the log must do, which is
/// to list the directory and read every segment's header.
fn raw_open(dir: &Path, buffer: &mut [u8; HEADER_BLOCK_BYTES]) {
    for path in segment_paths(dir) {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open segment file");
        file.read_exact_at(buffer, 0).expect("pread header");
        black_box(&buffer);
    }
}

fn open(c: &mut Criterion, large: &Path, small: &Path) {
    let mut group = c.benchmark_group("wal_open_clean");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    let mut buffer = [0u8; HEADER_BLOCK_BYTES];
    for (name, dir) in [("10M", large), ("100k", small)] {
        group.bench_function(format!("segwal_open_drop_{name}"), |b| {
            // The log was closed cleanly and nothing is appended, so the
            // drop finds its marker in place and writes nothing.
            b.iter(|| black_box(Wal::open(dir).expect("open log").next_lsn()));
        });
        group.bench_function(format!("raw_list_read_headers_{name}"), |b| {
            b.iter(|| raw_open(dir, &mut buffer));
        });
    }
    group.finish();
}

/// One segment as the raw verify baseline reads it: a CRC32C over its
/// bytes up to the end of its records, plain reads of the rest.
struct SegmentSpan {
    path: PathBuf,
    records_end: u64,
    size_bytes: u64,
}

/// The spans of `wal`'s segments: every record there has the same extent,
/// so a segment's records end at its first record plus its record count
/// times that extent (the clean-close marker after them is left out).
fn segment_spans(wal: &Wal) -> Vec<SegmentSpan> {
    let segments = wal.segments();
    let paths = segment_paths(wal.dir());
    assert_eq!(paths.len(), segments.len(), "one file per segment");
    let len_bytes = u32::try_from(BUILT_LEN_BYTES).expect("a small payload");
    segments
        .iter()
        .enumerate()
        .zip(paths)
        .map(|((index, info), path)| {
            let next_lsn = segments
                .get(index + 1)
                .map_or(wal.next_lsn().0, |next| next.header.base_lsn);
            let count = next_lsn - info.header.base_lsn;
            let extent_bytes = record_extent_bytes(len_bytes, info.header.record_align_bytes());
            SegmentSpan {
                path,
                records_end: u64::from(info.header.records_start()) + count * extent_bytes,
                size_bytes: u64::from(info.header.segment_size_bytes),
            }
        })
        .collect()
}

/// The baseline of verify: every segment read in 64 KiB chunks, one
/// CRC32C over its records.
fn raw_verify(spans: &[SegmentSpan], buffer: &mut [u8]) {
    for span in spans {
        let file = File::open(&span.path).expect("open segment file");
        let mut digest = CRC32C.digest();
        pread_chunks(&file, 0, span.records_end, buffer, |chunk| {
            digest.update(chunk);
        })
        .expect("pread");
        black_box(digest.finalize());
        pread_chunks(&file, span.records_end, span.size_bytes, buffer, |chunk| {
            black_box(chunk);
        })
        .expect("pread");
    }
}

fn verify(c: &mut Criterion, large: &Path) {
    let mut wal = Wal::open(large).expect("open log");
    let report = wal.verify().expect("verify");
    assert!(report.is_clean(), "the built log verifies: {report:?}");
    assert_eq!(
        report.records, LARGE_LOG_RECORDS,
        "verify sees every record"
    );
    println!(
        "verify of {} records in {} segments reads {} bytes of records",
        report.records, report.segments, report.bytes
    );
    let spans = segment_spans(&wal);
    let mut group = c.benchmark_group("wal_verify_10M");
    // Over a second per pass at 1 GB/s: one pass per sample, and room for
    // ten of them on a busy machine.
    group
        .throughput(Throughput::Bytes(report.bytes))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(15));
    group.bench_function("segwal_verify", |b| {
        b.iter(|| black_box(wal.verify().expect("verify").records));
    });
    let mut buffer = vec![0u8; SCAN_CHUNK_BYTES];
    group.bench_function("raw_pread_64KiB_crc32c", |b| {
        b.iter(|| raw_verify(&spans, &mut buffer));
    });
    group.finish();
}

// `main` is written out: `criterion_group!` would generate an undocumented
// `pub fn`, which `missing_docs` (denied workspace-wide) rejects.
fn main() {
    let mut criterion = Criterion::default().without_plots().configure_from_args();
    append_synced(&mut criterion);
    append_batch_synced(&mut criterion);
    append_threads(&mut criterion);
    let large = built_log(LARGE_LOG_RECORDS);
    let small = built_log(SMALL_LOG_RECORDS);
    open(&mut criterion, &large, &small);
    verify(&mut criterion, &large);
    criterion.final_summary();
}
