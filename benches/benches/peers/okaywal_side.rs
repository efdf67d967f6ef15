//! okaywal 0.3's side: one entry per durable unit (`begin_entry`,
//! `write_chunk` per record, `commit`, which flushes and `fdatasync`s),
//! `read_at` by a chunk's `LogPosition`, and its recovery as the only way
//! it offers to read a log from the start.
//!
//! okaywal is built to be checkpointed: once a file has taken
//! `checkpoint_after_bytes` (768 KiB by default) it hands the entries to
//! the `LogManager` and recycles the file, so their positions no longer
//! read. To keep every record, as the other logs do, checkpointing is off
//! (`checkpoint_after_bytes` = `u64::MAX`), and `preallocate_bytes` covers
//! the workload, as the other sides' preallocated space does. A log then
//! lives in one file, which a reopen recovers and keeps active (nothing is
//! checkpointed at open either).

use std::hint::black_box;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use okaywal::{
    Configuration, Entry, EntryId, LogManager, LogPosition, ReadChunkResult, SegmentReader,
    WriteAheadLog,
};
use segwal_benches::payload;
use segwal_benches::rounds::Slices;
use tempfile::TempDir;

use crate::{
    APPEND_LEN_BYTES, BUILD_BATCH_RECORDS, BUILT_LEN_BYTES, READ_CAPACITY_BYTES,
    SMALL_CAPACITY_BYTES, buffered_capacity_bytes, fresh_dir, index_of, indexed_payload,
    open_capacity_bytes, timed_threads,
};

/// Recovers every entry by reading each chunk and checking its CRC32C and
/// the index it carries, counting the records: the `LogManager` of every
/// log here, and okaywal's only way to read a log from its start (W5).
///
/// Reading is not optional: a manager that leaves the chunks to open
/// (which skips them) loses all but the first chunk, because
/// `EntryChunk::skip_remaining_bytes` skips the 4-byte CRC and the chunk's
/// `Drop` skips it again (okaywal 0.3.1); open then ends the log at the
/// misread byte, and each later `read_at` past that point `fdatasync`s.
#[derive(Debug)]
struct ReadAll {
    records: Arc<AtomicU64>,
    buffer: Vec<u8>,
}

impl ReadAll {
    /// A manager and the counter of the records it recovers.
    fn new() -> (Self, Arc<AtomicU64>) {
        let records = Arc::new(AtomicU64::new(0));
        let manager = ReadAll {
            records: Arc::clone(&records),
            buffer: vec![0u8; 4096],
        };
        (manager, records)
    }
}

impl LogManager for ReadAll {
    fn recover(&mut self, entry: &mut Entry<'_>) -> io::Result<()> {
        loop {
            let mut chunk = match entry.read_chunk()? {
                ReadChunkResult::Chunk(chunk) => chunk,
                ReadChunkResult::EndOfEntry => return Ok(()),
                ReadChunkResult::AbortedEntry => {
                    return Err(io::Error::other("an aborted entry in a clean log"));
                }
            };
            let len = usize::try_from(chunk.bytes_remaining()).expect("a small chunk");
            chunk.read_exact(&mut self.buffer[..len])?;
            if !chunk.check_crc()? {
                return Err(io::Error::other("chunk CRC mismatch"));
            }
            let expected = self.records.fetch_add(1, Ordering::Relaxed);
            assert_eq!(index_of(&self.buffer[..len]), expected, "records in order");
        }
    }

    fn checkpoint_to(
        &mut self,
        _last_checkpointed_id: EntryId,
        _checkpointed_entries: &mut SegmentReader,
        _wal: &WriteAheadLog,
    ) -> io::Result<()> {
        // Checkpointing is off (see the module comment).
        Ok(())
    }
}

/// Recovers the log of `records` records in `dir`, checking it finds them
/// all; returns it and the time `open` took.
fn recover(dir: &Path, preallocate_bytes: u64, records: u64) -> (WriteAheadLog, Duration) {
    let (manager, found) = ReadAll::new();
    let start = Instant::now();
    let wal = configuration(dir, preallocate_bytes)
        .open(manager)
        .expect("recover log");
    let elapsed = start.elapsed();
    assert_eq!(found.load(Ordering::Relaxed), records, "every record found");
    (wal, elapsed)
}

/// okaywal's configuration for a log in `dir` that keeps everything, with
/// `preallocate_bytes` of space.
fn configuration(dir: &Path, preallocate_bytes: u64) -> Configuration {
    Configuration::default_for(dir)
        .preallocate_bytes(u32::try_from(preallocate_bytes).expect("under 4 GiB"))
        .checkpoint_after_bytes(u64::MAX)
}

/// Writes one entry of `chunks` copies of `record` and commits it.
fn commit_entry(wal: &WriteAheadLog, record: &[u8], chunks: u64) {
    let mut entry = wal.begin_entry().expect("begin_entry");
    for _ in 0..chunks {
        black_box(entry.write_chunk(record).expect("write_chunk"));
    }
    black_box(entry.commit().expect("commit"));
}

/// A fresh log in `dir` with `preallocate_bytes` of space and one
/// committed record (the first commit also syncs the preallocated zeros
/// and the directory).
fn warm_log(dir: &Path, preallocate_bytes: u64) -> WriteAheadLog {
    let wal = configuration(&dir.join("wal"), preallocate_bytes)
        .open(ReadAll::new().0)
        .expect("open log");
    commit_entry(&wal, &payload(APPEND_LEN_BYTES), 1);
    wal
}

/// W1, W2 and W7: entries of `chunks_per_entry` records (one, or 64),
/// each committed, from one thread or from 4 (okaywal lets one writer at
/// a time have the file and shares each `fdatasync` among the commits
/// waiting for it).
pub(crate) struct Entries {
    /// Shut down (not timed) when dropped.
    wal: Option<WriteAheadLog>,
    /// Dropped after `wal`.
    _dir: TempDir,
    record: Vec<u8>,
    chunks_per_entry: u64,
    threads: usize,
}

impl Entries {
    /// A fresh log, warmed up, for `threads` threads.
    pub(crate) fn new(chunks_per_entry: usize, threads: usize) -> Self {
        let dir = fresh_dir();
        Entries {
            wal: Some(warm_log(dir.path(), SMALL_CAPACITY_BYTES)),
            _dir: dir,
            record: payload(APPEND_LEN_BYTES),
            chunks_per_entry: chunks_per_entry as u64,
            threads,
        }
    }
}

impl Slices for Entries {
    fn run(&mut self, entries: u64) -> Duration {
        let wal = self.wal.as_ref().expect("open until dropped");
        let (record, chunks) = (&self.record, self.chunks_per_entry);
        if self.threads == 1 {
            let start = Instant::now();
            for _ in 0..entries {
                commit_entry(wal, record, chunks);
            }
            start.elapsed()
        } else {
            timed_threads(self.threads, entries, |share| {
                for _ in 0..share {
                    commit_entry(wal, record, chunks);
                }
            })
        }
    }
}

impl Drop for Entries {
    fn drop(&mut self) {
        if let Some(wal) = self.wal.take() {
            wal.shutdown().expect("shutdown");
        }
    }
}

/// W3: one entry of every record, committed once at the end (okaywal's
/// commit always syncs, so one entry is its only way to sync once).
pub(crate) fn buffered(dir: &Path, records: u64) -> Duration {
    let wal = warm_log(dir, buffered_capacity_bytes(records));
    let record = payload(APPEND_LEN_BYTES);
    let start = Instant::now();
    commit_entry(&wal, &record, records);
    let elapsed = start.elapsed();
    wal.shutdown().expect("shutdown");
    elapsed
}

/// Writes `records` indexed records in entries of 1,000 and returns their
/// positions.
fn append_indexed(wal: &WriteAheadLog, records: u64) -> Vec<LogPosition> {
    let mut positions = Vec::with_capacity(usize::try_from(records).expect("fits memory"));
    let mut index = 0u64;
    while index < records {
        let count = (BUILD_BATCH_RECORDS as u64).min(records - index);
        let mut entry = wal.begin_entry().expect("begin_entry");
        for offset in 0..count {
            let chunk = entry
                .write_chunk(&indexed_payload(index + offset))
                .expect("write_chunk");
            positions.push(chunk.position);
        }
        entry.commit().expect("commit");
        index += count;
    }
    positions
}

/// W4 and W5: the log, open for `read_at` between scans.
pub(crate) struct Reads {
    dir: std::path::PathBuf,
    wal: Option<WriteAheadLog>,
    positions: Vec<LogPosition>,
}

impl Reads {
    /// Writes the records, shuts the log down and recovers it.
    pub(crate) fn build(dir: &Path, records: u64) -> Self {
        let wal = configuration(dir, READ_CAPACITY_BYTES)
            .open(ReadAll::new().0)
            .expect("create log");
        let positions = append_indexed(&wal, records);
        wal.shutdown().expect("shutdown");
        let (wal, _) = recover(dir, READ_CAPACITY_BYTES, records);
        Reads {
            dir: dir.to_path_buf(),
            wal: Some(wal),
            positions,
        }
    }

    /// W4: `read_at` each record's position, `read_exact` its 100 bytes,
    /// check its CRC32C, in `order`.
    pub(crate) fn random_reads(&mut self, order: &[usize]) -> Duration {
        let wal = self.wal.as_ref().expect("the log is open");
        let mut record = [0u8; BUILT_LEN_BYTES];
        let start = Instant::now();
        for &index in order {
            let mut reader = wal.read_at(self.positions[index]).expect("read_at");
            reader.read_exact(&mut record).expect("read chunk");
            assert!(reader.crc_is_valid().expect("crc"), "CRC checks");
            assert_eq!(index_of(&record), index as u64, "the right record");
        }
        start.elapsed()
    }

    /// W5: recovery, which reads every chunk and checks it; the log is
    /// open again afterwards.
    pub(crate) fn scan(&mut self) -> Duration {
        if let Some(wal) = self.wal.take() {
            wal.shutdown().expect("shutdown");
        }
        let records = self.positions.len() as u64;
        let (wal, elapsed) = recover(&self.dir, READ_CAPACITY_BYTES, records);
        self.wal = Some(wal);
        elapsed
    }
}

/// W6: a log of the records, shut down.
pub(crate) struct OpenFixture {
    dir: std::path::PathBuf,
    preallocate_bytes: u64,
    records: u64,
}

impl OpenFixture {
    /// Writes the records in one file of the log's space, shuts it down.
    pub(crate) fn build(dir: &Path, records: u64) -> Self {
        let preallocate_bytes = open_capacity_bytes(records);
        let wal = configuration(dir, preallocate_bytes)
            .open(ReadAll::new().0)
            .expect("create log");
        append_indexed(&wal, records);
        wal.shutdown().expect("shutdown");
        OpenFixture {
            dir: dir.to_path_buf(),
            preallocate_bytes,
            records,
        }
    }

    /// `Configuration::open` (recovery, which reads every chunk) until it
    /// returns a log ready for `begin_entry`; the shutdown is not timed.
    pub(crate) fn open(&self) -> Duration {
        let (wal, elapsed) = recover(&self.dir, self.preallocate_bytes, self.records);
        wal.shutdown().expect("shutdown");
        elapsed
    }
}
