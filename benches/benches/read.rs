//! Read benchmarks on one segment of 200,000 records of 100 bytes (24 MB
//! of records in a 32 MiB file), page cache warm, each group holding segwal
//! and a raw baseline on the same file so their ratio comes from one run:
//!
//! - `random_read_100B`: records in a fixed-seed xorshift order, through
//!   `Reader::read_record` with `ReadHint::Random` and with
//!   `ReadHint::Sequential`, against a raw `pread` of the record's 116
//!   bytes (header and payload) at the same offsets.
//! - `scan_200k`: every record in order, checksums verified, against raw
//!   `pread`s of the same bytes in 64 KiB chunks, without and with a
//!   CRC32C over them (the `crc` crate, slice-by-16 as segwal's host build).
//! - `open_200k`: `Writer::open`, which scans the whole segment and syncs,
//!   against opening the file, `pread`ing all of it in 64 KiB chunks, a
//!   CRC32C over the used part and an `fdatasync`.

use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crc::{CRC_32_ISCSI, Crc, Table};
use criterion::{Criterion, SamplingMode, Throughput};
use segwal::ReadHint;
use segwal::format::RECORD_HEADER_LEN;
use segwal_benches::{payload, pread_chunks, random_order};
use segwal_std::{FlushedOffset, Reader, Writer};
use tempfile::TempDir;

/// Records in the segment.
const RECORD_COUNT: u64 = 200_000;
/// Payload of every record.
const PAYLOAD_LEN_BYTES: usize = 100;
/// Holds the 200,000 records of 120 bytes (header, payload, padding).
const SEGMENT_SIZE_BYTES: u64 = 32 << 20;
/// Offsets in the precomputed random order; a power of two so the
/// measured loop wraps with a mask. 64 Ki draws cover a third of the
/// records, far more than fit a CPU cache.
const RANDOM_ORDER_LEN: usize = 1 << 16;
/// Seed of the random order: the same offsets on every run.
const RANDOM_SEED: u64 = 0x5EED_0F5E_6A11_0001;
/// Read size of the raw scans, the size of segwal's sequential window.
const SCAN_CHUNK_BYTES: usize = 64 * 1024;

/// CRC32C with the slice-by-16 tables segwal uses on hosts.
static CRC32C: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_ISCSI);

/// The segment every read benchmark uses, written once and synced.
struct Fixture {
    _dir: TempDir,
    path: PathBuf,
    flushed: FlushedOffset,
    record_offsets: Vec<u64>,
    records_start: u64,
    records_end: u64,
}

impl Fixture {
    /// Writes the records, each payload carrying its index so no two are
    /// alike, and syncs. The writer is dropped: the readers follow the
    /// flushed offset it published.
    fn build() -> Self {
        // Under the target directory: a real disk, page cache included.
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("bench dir");
        let path = dir.path().join("segment-200k");
        let mut writer = Writer::create(&path, SEGMENT_SIZE_BYTES, 0).expect("create segment");
        let mut record = payload(PAYLOAD_LEN_BYTES);
        let mut record_offsets =
            Vec::with_capacity(usize::try_from(RECORD_COUNT).expect("fits memory"));
        for index in 0..RECORD_COUNT {
            record[..8].copy_from_slice(&index.to_le_bytes());
            record_offsets.push(writer.append(&record).expect("append").offset);
        }
        writer.sync().expect("sync");
        Fixture {
            _dir: dir,
            path,
            flushed: writer.flushed_offset(),
            record_offsets,
            records_start: writer.records_start(),
            records_end: writer.written_offset(),
        }
    }

    fn reader(&self) -> Reader {
        Reader::open(&self.path, Some(self.flushed.clone())).expect("open reader")
    }

    fn raw_file(&self) -> File {
        File::open(&self.path).expect("open raw file")
    }

    fn used_bytes(&self) -> u64 {
        self.records_end - self.records_start
    }
}

fn random_read(c: &mut Criterion, fixture: &Fixture) {
    let order = random_order(&fixture.record_offsets, RANDOM_ORDER_LEN, RANDOM_SEED);
    let mut group = c.benchmark_group("random_read_100B");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    for (name, hint) in [
        ("segwal_hint_random", ReadHint::Random),
        ("segwal_hint_sequential", ReadHint::Sequential),
    ] {
        let mut reader = fixture.reader();
        let mut cursor = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                let offset = order[cursor & (RANDOM_ORDER_LEN - 1)];
                cursor = cursor.wrapping_add(1);
                let record = reader.read_record(offset, hint).expect("read_record");
                black_box(&*record.payload);
            });
        });
    }
    let file = fixture.raw_file();
    let mut buffer = [0u8; RECORD_HEADER_LEN + PAYLOAD_LEN_BYTES];
    let mut cursor = 0usize;
    group.bench_function("raw_pread_116B", |b| {
        b.iter(|| {
            let offset = order[cursor & (RANDOM_ORDER_LEN - 1)];
            cursor = cursor.wrapping_add(1);
            file.read_exact_at(&mut buffer, offset).expect("pread");
            black_box(&buffer);
        });
    });
    group.finish();
}

fn scan(c: &mut Criterion, fixture: &Fixture) {
    let mut group = c.benchmark_group("scan_200k");
    group
        .throughput(Throughput::Bytes(fixture.used_bytes()))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut reader = fixture.reader();
    group.bench_function("segwal_read_record", |b| {
        b.iter(|| {
            let mut position = fixture.records_start;
            for _ in 0..RECORD_COUNT {
                let record = reader
                    .read_record(position, ReadHint::Sequential)
                    .expect("read_record");
                black_box(&*record.payload);
                position = record.next_offset;
            }
            assert_eq!(
                position, fixture.records_end,
                "scan ends at the records end"
            );
        });
    });
    let file = fixture.raw_file();
    let mut buffer = vec![0u8; SCAN_CHUNK_BYTES];
    group.bench_function("raw_pread_64KiB", |b| {
        b.iter(|| {
            pread_chunks(
                &file,
                fixture.records_start,
                fixture.records_end,
                &mut buffer,
                |chunk| {
                    black_box(chunk);
                },
            )
            .expect("pread");
        });
    });
    group.bench_function("raw_pread_64KiB_crc32c", |b| {
        b.iter(|| {
            let mut digest = CRC32C.digest();
            pread_chunks(
                &file,
                fixture.records_start,
                fixture.records_end,
                &mut buffer,
                |chunk| {
                    digest.update(chunk);
                },
            )
            .expect("pread");
            black_box(digest.finalize());
        });
    });
    group.finish();
}

/// The baseline of `open`: everything a scan must at least do, without
/// segwal's record-by-record checks.
fn raw_open(path: &Path, records_end: u64, buffer: &mut [u8]) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open raw file");
    let mut digest = CRC32C.digest();
    pread_chunks(&file, 0, records_end, buffer, |chunk| digest.update(chunk)).expect("pread");
    black_box(digest.finalize());
    pread_chunks(&file, records_end, SEGMENT_SIZE_BYTES, buffer, |chunk| {
        black_box(chunk);
    })
    .expect("pread");
    file.sync_data().expect("fdatasync");
}

fn open(c: &mut Criterion, fixture: &Fixture) {
    let reopened = Writer::open(&fixture.path).expect("open segment");
    assert_eq!(
        reopened.record_count(),
        RECORD_COUNT,
        "open finds every record"
    );
    drop(reopened);
    let mut group = c.benchmark_group("open_200k");
    group
        .throughput(Throughput::Bytes(SEGMENT_SIZE_BYTES))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("segwal_writer_open", |b| {
        b.iter(|| {
            black_box(
                Writer::open(&fixture.path)
                    .expect("open segment")
                    .record_count(),
            )
        });
    });
    let mut buffer = vec![0u8; SCAN_CHUNK_BYTES];
    group.bench_function("raw_open_pread_crc32c_fdatasync", |b| {
        b.iter(|| raw_open(&fixture.path, fixture.records_end, &mut buffer));
    });
    group.finish();
}

fn read_benches(c: &mut Criterion) {
    let fixture = Fixture::build();
    random_read(c, &fixture);
    scan(c, &fixture);
    open(c, &fixture);
}

// `main` is written out: `criterion_group!` would generate an undocumented
// `pub fn`, which `missing_docs` (denied workspace-wide) rejects.
fn main() {
    let mut criterion = Criterion::default().without_plots().configure_from_args();
    read_benches(&mut criterion);
    criterion.final_summary();
}
