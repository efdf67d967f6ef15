//! Memory: what a writer and a reader hold (live heap bytes, buffers
//! included), and that it does not grow with the log's length.
//!
//! The same phases run on a log of `SHORT_RECORDS` and on one five times as
//! long, both well past the segments the offset index keeps
//! ([`segwal::wal_index`]'s four): every figure of the long log must be
//! within [`SLACK_BYTES`] of the short one's. The figures are printed (run
//! with `--nocapture`); README "Memory" quotes them.
//!
//! One test in this binary: the heap counter (dhat's global allocator) sees
//! every thread, so nothing else may run beside it.

use std::path::Path;

use segwal::{Durability, Lsn};
use segwal_std::{Reader, SharedWal, Wal, WalOptions};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Segment size of the test logs: small, so the logs have many segments.
const SEGMENT_BYTES: u64 = 1 << 20;
/// Records of the short log: about seven segments of 100-byte records.
const SHORT_RECORDS: u64 = 60_000;
/// Records of the long log.
const LONG_RECORDS: u64 = 5 * SHORT_RECORDS;
/// Records each phase appends to an open log.
const APPENDED_RECORDS: u64 = 20_000;
/// How far the long log's figures may exceed the short log's. The offset
/// index keeps the last four segments read, 4 bytes a record in a `Vec`
/// that grows by doubling, so which segments those are moves the figure by
/// up to two segments' worth (about 70 KiB here); the directory store
/// caches up to 64 open files. Growth with the log's length would be 4 bytes
/// for each of the long log's 240,000 extra records (over 900 KiB) and more.
const SLACK_BYTES: usize = 96 * 1024;
/// Ceiling on every figure: under a segment's size.
const CEILING_BYTES: usize = 1 << 20;
/// Threads of the `SharedWal` phase.
const THREADS: u64 = 4;

fn options() -> WalOptions {
    WalOptions {
        segment_size_bytes: SEGMENT_BYTES,
        durability: Durability::Manual,
        ..WalOptions::default()
    }
}

/// A 100-byte payload that names its record.
fn payload(index: u64) -> [u8; 100] {
    let mut bytes = [0x5Au8; 100];
    bytes[..8].copy_from_slice(&index.to_le_bytes());
    bytes
}

/// A cleanly closed log of `records` records in `dir`.
fn build(dir: &Path, records: u64) {
    let mut wal = Wal::open_with(dir, &options()).expect("create log");
    for index in 0..records {
        wal.append(&payload(index)).expect("append");
    }
    wal.close().expect("close");
}

/// Live heap bytes.
fn live_bytes() -> usize {
    dhat::HeapStats::get().curr_bytes
}

/// Live heap bytes held by what each phase leaves open, over the bytes
/// live before it.
#[derive(Debug, Clone, Copy)]
struct Figures {
    writer_opened: usize,
    writer_after_reads: usize,
    writer_after_appends: usize,
    read_only_after_scan: usize,
    shared_after_appends: usize,
    segment_reader_after_scan: usize,
}

/// Reads every record once by iteration and every 101st by LSN.
fn read_everything(wal: &mut Wal, records: u64) {
    let mut seen = 0u64;
    let mut iter = wal.iter();
    while let Some(item) = iter.next_borrowed() {
        let (_, payload) = item.expect("iterate");
        assert_eq!(payload[..8], seen.to_le_bytes(), "records in order");
        seen += 1;
    }
    assert_eq!(seen, records, "every record scanned");
    let mut out = Vec::new();
    for index in (0..records).step_by(101) {
        wal.read_into(Lsn(index + 1), &mut out)
            .expect("read by LSN");
        assert_eq!(out, payload(index), "record {index}");
    }
}

fn measure(dir: &Path, records: u64) -> Figures {
    let base = live_bytes();
    let held = || live_bytes().saturating_sub(base);

    let mut wal = Wal::open_with(dir, &options()).expect("open");
    let writer_opened = held();
    read_everything(&mut wal, records);
    let writer_after_reads = held();
    for index in records..records + APPENDED_RECORDS {
        wal.append(&payload(index)).expect("append");
    }
    wal.sync().expect("sync");
    let writer_after_appends = held();
    wal.close().expect("close");
    let records = records + APPENDED_RECORDS;

    let mut reader = Wal::open_read_only(dir).expect("open read-only");
    read_everything(&mut reader, records);
    let read_only_after_scan = held();
    drop(reader);

    let shared = SharedWal::open(dir, &options()).expect("open shared");
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let shared = &shared;
            scope.spawn(move || {
                for index in 0..APPENDED_RECORDS / THREADS {
                    shared
                        .append(&payload(thread << 32 | index))
                        .expect("shared append");
                }
            });
        }
    });
    let shared_after_appends = held();
    drop(shared);

    let newest = std::fs::read_dir(dir)
        .expect("list")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .max()
        .expect("a segment");
    let mut segment = Reader::open(&newest, None).expect("open the newest segment");
    let mut position = segment.records_start();
    let end = segment.flushed_offset();
    while position < end {
        let record = segment
            .read_record(position, segwal::ReadHint::Sequential)
            .expect("read");
        position = record.next_offset;
    }
    let segment_reader_after_scan = held();
    drop(segment);

    Figures {
        writer_opened,
        writer_after_reads,
        writer_after_appends,
        read_only_after_scan,
        shared_after_appends,
        segment_reader_after_scan,
    }
}

#[test]
fn what_a_writer_and_a_reader_hold_does_not_grow_with_the_log() {
    let short_dir = tempfile::tempdir().expect("temp dir");
    let long_dir = tempfile::tempdir().expect("temp dir");
    build(short_dir.path(), SHORT_RECORDS);
    build(long_dir.path(), LONG_RECORDS);

    let _profiler = dhat::Profiler::builder().testing().build();
    let short = measure(short_dir.path(), SHORT_RECORDS);
    let long = measure(long_dir.path(), LONG_RECORDS);

    let rows = [
        ("Wal, opened", short.writer_opened, long.writer_opened),
        (
            "Wal, after a full scan and reads by LSN across the log",
            short.writer_after_reads,
            long.writer_after_reads,
        ),
        (
            "Wal, after 20,000 more appends (rotations)",
            short.writer_after_appends,
            long.writer_after_appends,
        ),
        (
            "Wal::open_read_only, after a full scan and reads by LSN",
            short.read_only_after_scan,
            long.read_only_after_scan,
        ),
        (
            "SharedWal, after 4 threads appended 20,000 records",
            short.shared_after_appends,
            long.shared_after_appends,
        ),
        (
            "Reader (one segment), after a scan",
            short.segment_reader_after_scan,
            long.segment_reader_after_scan,
        ),
    ];
    println!(
        "memory: live heap bytes held, log of {SHORT_RECORDS} records / of {LONG_RECORDS} \
         records (1 MiB segments, 100-byte records):"
    );
    for (what, short_bytes, long_bytes) in rows {
        println!("memory: {what}: {short_bytes} / {long_bytes}");
        assert!(
            long_bytes <= short_bytes + SLACK_BYTES,
            "{what}: {long_bytes} bytes for the long log against {short_bytes} for the short one"
        );
        assert!(
            long_bytes.max(short_bytes) < CEILING_BYTES,
            "{what}: {long_bytes} / {short_bytes} bytes, over {CEILING_BYTES}"
        );
        // Something is held: the figure measures the log, not nothing.
        assert!(short_bytes > 0, "{what}: nothing measured");
    }
}
