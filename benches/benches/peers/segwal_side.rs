//! segwal's side of each workload, through the public API of `segwal-std`:
//! the log (`Wal`, `SharedWal`) and the single-segment `Writer`/`Reader`.
//!
//! The log's segments are as large as the workload's preallocated space
//! (one segment holds the run, as the raw baseline's one file does), with
//! `Durability::Sync` where each append must be durable and `Manual` plus
//! one `sync` where it need not. W3 gives the log a 64 KiB write-behind
//! buffer (`write_buffer_bytes`; the raw baseline's chunk, and what seglog
//! and okaywal do with their 16 KiB buffers): unsynced appends then reach
//! the file when it fills, not one `pwritev` each. W3 also runs the default
//! 64 MiB segments, which rotate inside the measured span (the next
//! segment prepared in the background, as by default).

use std::fs;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use segwal::{Appended, Durability, Lsn, ReadHint, WalTailState};
use segwal_benches::payload;
use segwal_benches::rounds::Slices;
use segwal_std::{FlushedOffset, Reader, SegmentOptions, SharedWal, Wal, WalOptions, Writer};
use tempfile::TempDir;

use crate::{
    APPEND_LEN_BYTES, BUILD_BATCH_RECORDS, READ_CAPACITY_BYTES, SMALL_CAPACITY_BYTES, THREADS,
    buffered_capacity_bytes, fresh_dir, index_of, indexed_payload, timed_threads,
};

/// Write-behind buffer of the log in W3.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// Options of a log with segments of `segment_size_bytes`.
fn options(segment_size_bytes: u64, durability: Durability) -> WalOptions {
    WalOptions {
        segment_size_bytes,
        durability,
        ..WalOptions::default()
    }
}

/// Options of W3's log: `Manual` durability, a 64 KiB write buffer.
fn buffered_options(segment_size_bytes: u64) -> WalOptions {
    WalOptions {
        write_buffer_bytes: WRITE_BUFFER_BYTES,
        ..options(segment_size_bytes, Durability::Manual)
    }
}

/// A fresh log in `dir` with one durable record in it.
fn warm_wal(dir: &Path, options: &WalOptions) -> Wal {
    let mut wal = Wal::open_with(dir.join("wal"), options).expect("open log");
    wal.append(&payload(APPEND_LEN_BYTES))
        .expect("warm-up append");
    wal.sync().expect("warm-up sync");
    wal
}

/// A fresh segment file in `dir` of `size_bytes`, with a write-behind
/// buffer of `write_buffer_bytes` (0: none), and one synced record.
fn warm_writer(dir: &Path, size_bytes: u64, write_buffer_bytes: usize) -> Writer {
    let options = SegmentOptions {
        write_buffer_bytes,
        ..SegmentOptions::new(size_bytes)
    };
    let mut writer =
        Writer::create_with(dir.join("segment"), &options, &[]).expect("create segment");
    writer
        .append(&payload(APPEND_LEN_BYTES))
        .expect("warm-up append");
    writer.sync().expect("warm-up sync");
    writer
}

/// Records in `wal`, warm-up included.
fn record_count(wal: &Wal) -> u64 {
    wal.next_lsn().0 - wal.first_lsn().0
}

/// W1 and W2 with the log: `Wal::append` (one record) or
/// `Wal::append_batch` (64), `Durability::Sync`.
pub(crate) struct WalAppends {
    wal: Wal,
    /// Dropped after `wal`, which closes into it.
    _dir: TempDir,
    record: Vec<u8>,
    records_per_append: usize,
    appended: u64,
}

impl WalAppends {
    /// A fresh log, warmed up.
    pub(crate) fn new(records_per_append: usize) -> Self {
        let dir = fresh_dir();
        let wal = warm_wal(dir.path(), &options(SMALL_CAPACITY_BYTES, Durability::Sync));
        WalAppends {
            appended: record_count(&wal),
            wal,
            _dir: dir,
            record: payload(APPEND_LEN_BYTES),
            records_per_append,
        }
    }
}

impl Slices for WalAppends {
    fn run(&mut self, appends: u64) -> Duration {
        let batch: Vec<&[u8]> = vec![self.record.as_slice(); self.records_per_append];
        let start = Instant::now();
        for _ in 0..appends {
            if self.records_per_append == 1 {
                black_box(self.wal.append(&self.record).expect("append"));
            } else {
                black_box(self.wal.append_batch(&batch).expect("append_batch"));
            }
        }
        let elapsed = start.elapsed();
        self.appended += appends * self.records_per_append as u64;
        assert_eq!(record_count(&self.wal), self.appended, "every record in");
        elapsed
    }
}

/// W1 and W2 with one segment: `Writer::append` (one record) or
/// `Writer::append_batch` (64), then `Writer::sync`.
pub(crate) struct WriterAppends {
    writer: Writer,
    /// Dropped after `writer`.
    _dir: TempDir,
    record: Vec<u8>,
    records_per_append: usize,
}

impl WriterAppends {
    /// A fresh segment, warmed up.
    pub(crate) fn new(records_per_append: usize) -> Self {
        let dir = fresh_dir();
        WriterAppends {
            writer: warm_writer(dir.path(), SMALL_CAPACITY_BYTES, 0),
            _dir: dir,
            record: payload(APPEND_LEN_BYTES),
            records_per_append,
        }
    }
}

impl Slices for WriterAppends {
    fn run(&mut self, appends: u64) -> Duration {
        let batch: Vec<&[u8]> = vec![self.record.as_slice(); self.records_per_append];
        let before = self.writer.record_count();
        let start = Instant::now();
        for _ in 0..appends {
            if self.records_per_append == 1 {
                black_box(self.writer.append(&self.record).expect("append"));
            } else {
                black_box(self.writer.append_batch(&batch).expect("append_batch"));
            }
            self.writer.sync().expect("sync");
        }
        let elapsed = start.elapsed();
        assert_eq!(
            self.writer.record_count() - before,
            appends * self.records_per_append as u64,
            "every record in"
        );
        elapsed
    }
}

/// `records` appends to `wal` (`Durability::Manual`) and one sync.
fn buffered_appends(mut wal: Wal, records: u64) -> Duration {
    let record = payload(APPEND_LEN_BYTES);
    let start = Instant::now();
    for _ in 0..records {
        black_box(wal.append(&record).expect("append"));
    }
    wal.sync().expect("sync");
    let elapsed = start.elapsed();
    assert_eq!(record_count(&wal), records + 1, "every record in");
    elapsed
}

/// W3 with the log in one segment that holds the run.
pub(crate) fn wal_buffered(dir: &Path, records: u64) -> Duration {
    let size_bytes = buffered_capacity_bytes(records);
    buffered_appends(warm_wal(dir, &buffered_options(size_bytes)), records)
}

/// W3 with the log's default 64 MiB segments: rotations are measured.
pub(crate) fn wal_buffered_default_segments(dir: &Path, records: u64) -> Duration {
    let default_size_bytes = WalOptions::default().segment_size_bytes;
    buffered_appends(
        warm_wal(dir, &buffered_options(default_size_bytes)),
        records,
    )
}

/// W3 with one segment: `Writer::append`s through the same 64 KiB
/// write-behind buffer as the log's, and one `Writer::sync`.
pub(crate) fn writer_buffered(dir: &Path, records: u64) -> Duration {
    let mut writer = warm_writer(dir, buffered_capacity_bytes(records), WRITE_BUFFER_BYTES);
    let record = payload(APPEND_LEN_BYTES);
    let start = Instant::now();
    for _ in 0..records {
        black_box(writer.append(&record).expect("append"));
    }
    writer.sync().expect("sync");
    let elapsed = start.elapsed();
    assert_eq!(writer.record_count(), records + 1, "every record in");
    elapsed
}

/// Appends `records` indexed records to `wal` in batches, syncs, and
/// returns their LSNs.
fn append_indexed(wal: &mut Wal, records: u64) -> Vec<Lsn> {
    let mut lsns = Vec::with_capacity(usize::try_from(records).expect("fits memory"));
    let mut index = 0u64;
    while index < records {
        let count = (BUILD_BATCH_RECORDS as u64).min(records - index);
        let batch: Vec<Vec<u8>> = (index..index + count).map(indexed_payload).collect();
        let slices: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        let range = wal.append_batch(&slices).expect("append_batch");
        lsns.extend((range.start.0..range.end.0).map(Lsn));
        index += count;
    }
    wal.sync().expect("sync");
    lsns
}

/// Builds a cleanly closed log of `records` indexed records in `dir`
/// (default options, `Manual` durability, batches of 1,000).
pub(crate) fn build_log(dir: &Path, records: u64) {
    let options = WalOptions {
        durability: Durability::Manual,
        ..WalOptions::default()
    };
    let mut wal = Wal::open_with(dir, &options).expect("create log");
    append_indexed(&mut wal, records);
    wal.close().expect("close");
}

/// W4 and W5 with the log: a log in one segment, reopened, read by LSN.
pub(crate) struct WalReads {
    wal: Wal,
    lsns: Vec<Lsn>,
    buffer: Vec<u8>,
}

impl WalReads {
    /// Builds the log in `dir`, closes it and opens it again.
    pub(crate) fn build(dir: &Path, records: u64) -> Self {
        let mut wal = Wal::open_with(dir, &options(READ_CAPACITY_BYTES, Durability::Manual))
            .expect("create log");
        let lsns = append_indexed(&mut wal, records);
        wal.close().expect("close");
        let wal = Wal::open(dir).expect("reopen log");
        assert_eq!(record_count(&wal), records, "every record back");
        WalReads {
            wal,
            lsns,
            buffer: Vec::with_capacity(4096),
        }
    }

    /// W4: `Wal::read_into` one reused buffer, in `order`.
    pub(crate) fn random_reads(&mut self, order: &[usize]) -> Duration {
        let start = Instant::now();
        for &index in order {
            self.wal
                .read_into(self.lsns[index], &mut self.buffer)
                .expect("read_into");
            assert_eq!(index_of(&self.buffer), index as u64, "the right record");
        }
        start.elapsed()
    }

    /// W5: `Wal::iter` over every record, payloads lent by
    /// `Iter::next_borrowed` (no copy).
    pub(crate) fn scan(&mut self) -> Duration {
        let start = Instant::now();
        let mut expected = 0u64;
        let mut records = self.wal.iter();
        while let Some(entry) = records.next_borrowed() {
            let (_, record) = entry.expect("iter");
            assert_eq!(index_of(&record), expected, "records in order");
            expected += 1;
        }
        let elapsed = start.elapsed();
        assert_eq!(expected, self.lsns.len() as u64, "every record scanned");
        elapsed
    }
}

/// W4 and W5 with one segment: a `Reader` following the writer's flushed
/// offset.
pub(crate) struct SegmentReads {
    reader: Reader,
    /// The handles `Writer::append` returned: offset and extent.
    handles: Vec<Appended>,
    records_start: u64,
    records_end: u64,
}

impl SegmentReads {
    /// Writes the records into a fresh segment at `path` and syncs.
    pub(crate) fn build(path: &Path, records: u64) -> Self {
        let mut writer = Writer::create(path, READ_CAPACITY_BYTES, 0).expect("create segment");
        let handles: Vec<Appended> = (0..records)
            .map(|index| writer.append(&indexed_payload(index)).expect("append"))
            .collect();
        writer.sync().expect("sync");
        let flushed: FlushedOffset = writer.flushed_offset();
        let (records_start, records_end) = (writer.records_start(), writer.written_offset());
        drop(writer);
        let reader = Reader::open(path, Some(flushed)).expect("open reader");
        SegmentReads {
            reader,
            handles,
            records_start,
            records_end,
        }
    }

    /// W4: `Reader::read_record` by the handle `append` returned, with its
    /// read hint (one read of exactly the record; zero-copy), in `order`.
    pub(crate) fn random_reads(&mut self, order: &[usize]) -> Duration {
        let start = Instant::now();
        for &index in order {
            let handle = self.handles[index];
            let record = self
                .reader
                .read_record(handle.offset, handle.read_hint())
                .expect("read_record");
            assert_eq!(index_of(&record.payload), index as u64, "the right record");
        }
        start.elapsed()
    }

    /// W5: `Reader::read_record` with `ReadHint::Sequential` from the first
    /// record to the last, zero-copy.
    pub(crate) fn scan(&mut self) -> Duration {
        let start = Instant::now();
        let mut position = self.records_start;
        let mut expected = 0u64;
        while position < self.records_end {
            let record = self
                .reader
                .read_record(position, ReadHint::Sequential)
                .expect("read_record");
            assert_eq!(index_of(&record.payload), expected, "records in order");
            position = record.next_offset;
            expected += 1;
        }
        let elapsed = start.elapsed();
        assert_eq!(expected, self.handles.len() as u64, "every record scanned");
        elapsed
    }
}

impl SegmentReads {
    /// W5: `Reader::read_batch` from the first record to the last: each
    /// batch is a window's records, checked together, zero-copy.
    pub(crate) fn scan_batches(&mut self) -> Duration {
        let start = Instant::now();
        let mut position = self.records_start;
        let mut expected = 0u64;
        while position < self.records_end {
            let mut batch = self.reader.read_batch(position).expect("read_batch");
            for record in &mut batch {
                assert_eq!(index_of(&record.payload), expected, "records in order");
                expected += 1;
            }
            position = batch.next_offset();
        }
        let elapsed = start.elapsed();
        assert_eq!(expected, self.handles.len() as u64, "every record scanned");
        elapsed
    }
}

/// W6: `Wal::open` of the cleanly closed log in `dir`; the drop (which
/// finds the clean-close marker in place and writes nothing) is not timed.
pub(crate) fn open(dir: &Path, records: u64) -> Duration {
    let start = Instant::now();
    let wal = Wal::open(dir).expect("open log");
    let elapsed = start.elapsed();
    assert_eq!(record_count(&wal), records, "every record found");
    assert_eq!(wal.tail_state(), WalTailState::Clean, "closed cleanly");
    elapsed
}

/// The cleanly closed log of `records` records that `wal.rs` keeps under
/// the target directory: reused when it opens with that many records,
/// else built.
pub(crate) fn kept_log(records: u64) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("wal-bench")
        .join(format!("log-{records}x{}B", crate::BUILT_LEN_BYTES));
    if dir.exists() {
        let wal = Wal::open(&dir).expect("open the kept log");
        let found = record_count(&wal);
        let clean = wal.tail_state() == WalTailState::Clean;
        drop(wal);
        if found == records && clean {
            eprintln!("W6: log of {records} records reused from {}", dir.display());
            return dir;
        }
        eprintln!("W6: {} holds {found} records: rebuilding", dir.display());
        fs::remove_dir_all(&dir).expect("remove the stale log");
    }
    let start = Instant::now();
    build_log(&dir, records);
    eprintln!(
        "W6: log of {records} records built at {} in {:.1?}",
        dir.display(),
        start.elapsed()
    );
    dir
}

/// W7: `SharedWal::append` from 4 threads, each append durable when it
/// returns (group commit).
pub(crate) struct SharedAppends {
    wal: SharedWal,
    /// Dropped after `wal`, which closes into it.
    _dir: TempDir,
    record: Vec<u8>,
}

impl SharedAppends {
    /// A fresh shared log, warmed up.
    pub(crate) fn new() -> Self {
        let dir = fresh_dir();
        let wal = SharedWal::open(
            dir.path().join("wal"),
            &options(SMALL_CAPACITY_BYTES, Durability::Sync),
        )
        .expect("open shared log");
        let record = payload(APPEND_LEN_BYTES);
        wal.append(&record).expect("warm-up append");
        SharedAppends {
            wal,
            _dir: dir,
            record,
        }
    }
}

impl Slices for SharedAppends {
    fn run(&mut self, records: u64) -> Duration {
        let (wal, record) = (&self.wal, &self.record);
        let before = wal.next_lsn().0;
        let elapsed = timed_threads(THREADS, records, |share| {
            for _ in 0..share {
                black_box(wal.append(record).expect("shared append"));
            }
        });
        assert_eq!(wal.next_lsn().0 - before, records, "every record in");
        elapsed
    }
}
