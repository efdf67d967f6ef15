//! seglog 0.3's side: one preallocated (`fallocate`d) segment file, sized
//! for the workload, with no per-record caller header (`Writer<0>`).
//!
//! seglog 0.3 keeps a record after a crash only when a commit marker
//! follows it (`Writer::open` rolls back everything after the last valid
//! marker), so a durable append is `append` then `commit` (a 17-byte marker
//! and an `fdatasync`); `sync` alone would flush records that recovery then
//! discards. A group is `append_batch` (records, one marker, one sync).

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use seglog::read::{ReadHint, Reader};
use seglog::write::Writer;
use segwal_benches::payload;
use segwal_benches::rounds::Slices;
use tempfile::TempDir;

use crate::{
    APPEND_LEN_BYTES, BUILD_BATCH_RECORDS, READ_CAPACITY_BYTES, SMALL_CAPACITY_BYTES,
    buffered_capacity_bytes, fresh_dir, index_of, indexed_payload, open_capacity_bytes,
};

/// The empty caller header of every record.
const NO_HEADER: [u8; 0] = [];

fn usize_of(bytes: u64) -> usize {
    usize::try_from(bytes).expect("fits memory")
}

/// A fresh segment of `size_bytes` in `dir` with one committed record.
fn warm_writer(dir: &Path, size_bytes: u64) -> Writer<0> {
    let mut writer =
        Writer::<0>::create(dir.join("segment"), usize_of(size_bytes), 0).expect("create segment");
    writer
        .append_data(&payload(APPEND_LEN_BYTES))
        .expect("warm-up append");
    writer.commit(0).expect("warm-up commit");
    writer
}

/// W1 and W2: `append_data` then `commit` (marker and `fdatasync`) for
/// one record, `append_batch` (records, one marker, one `fdatasync`) for
/// 64.
pub(crate) struct Appends {
    writer: Writer<0>,
    /// Dropped after `writer`.
    _dir: TempDir,
    record: Vec<u8>,
    records_per_commit: usize,
    position: u64,
}

impl Appends {
    /// A fresh segment, warmed up.
    pub(crate) fn new(records_per_commit: usize) -> Self {
        let dir = fresh_dir();
        Appends {
            writer: warm_writer(dir.path(), SMALL_CAPACITY_BYTES),
            _dir: dir,
            record: payload(APPEND_LEN_BYTES),
            records_per_commit,
            position: 0,
        }
    }
}

impl Slices for Appends {
    fn run(&mut self, commits: u64) -> Duration {
        let batch: Vec<(&[u8; 0], &[u8])> =
            vec![(&NO_HEADER, self.record.as_slice()); self.records_per_commit];
        let start = Instant::now();
        for _ in 0..commits {
            self.position += self.records_per_commit as u64;
            if self.records_per_commit == 1 {
                black_box(self.writer.append_data(&self.record).expect("append"));
                black_box(self.writer.commit(self.position).expect("commit"));
            } else {
                black_box(
                    self.writer
                        .append_batch(&batch, self.position)
                        .expect("append_batch"),
                );
            }
        }
        start.elapsed()
    }
}

/// W3: `append_data` of every record, one `commit` at the end.
pub(crate) fn buffered(dir: &Path, records: u64) -> Duration {
    let mut writer = warm_writer(dir, buffered_capacity_bytes(records));
    let record = payload(APPEND_LEN_BYTES);
    let start = Instant::now();
    for _ in 0..records {
        black_box(writer.append_data(&record).expect("append"));
    }
    writer.commit(records).expect("commit");
    start.elapsed()
}

/// Writes `records` indexed records into a fresh segment of `size_bytes`
/// at `path`, committing every 1,000, and returns the writer and the
/// records' offsets.
fn build(path: &Path, size_bytes: u64, records: u64) -> (Writer<0>, Vec<u64>) {
    let mut writer = Writer::<0>::create(path, usize_of(size_bytes), 0).expect("create segment");
    let mut offsets = Vec::with_capacity(usize_of(records));
    for index in 0..records {
        let (offset, _) = writer.append_data(&indexed_payload(index)).expect("append");
        offsets.push(offset);
        if (index + 1) % BUILD_BATCH_RECORDS as u64 == 0 || index + 1 == records {
            writer.commit(index).expect("commit");
        }
    }
    (writer, offsets)
}

/// W4 and W5: a reader on the segment, following the writer's flushed
/// offset.
pub(crate) struct Reads {
    reader: Reader<0>,
    offsets: Vec<u64>,
}

impl Reads {
    /// Writes the records and opens a read-only reader.
    pub(crate) fn build(path: &Path, records: u64) -> Self {
        let (writer, offsets) = build(path, READ_CAPACITY_BYTES, records);
        let reader =
            Reader::<0>::open_read_only(path, Some(writer.flushed_offset())).expect("open reader");
        Reads { reader, offsets }
    }

    /// W4: `Reader::read_record` with `ReadHint::Random` (zero-copy), in
    /// `order`.
    pub(crate) fn random_reads(&mut self, order: &[usize]) -> Duration {
        let start = Instant::now();
        for &index in order {
            let record = self
                .reader
                .read_record(self.offsets[index], ReadHint::Random)
                .expect("read_record");
            assert_eq!(index_of(&record.data), index as u64, "the right record");
        }
        start.elapsed()
    }

    /// W5: `Reader::iter` from the first record (sequential read-ahead,
    /// CRC checked, commit markers skipped), zero-copy.
    pub(crate) fn scan(&mut self) -> Duration {
        let start = Instant::now();
        let mut iter = self.reader.iter(0);
        let mut expected = 0u64;
        while let Some(record) = iter.next_record().expect("next_record") {
            assert_eq!(index_of(&record.data), expected, "records in order");
            expected += 1;
        }
        let elapsed = start.elapsed();
        assert_eq!(expected, self.offsets.len() as u64, "every record scanned");
        elapsed
    }
}

/// W6: a segment of the log's records, closed.
pub(crate) struct OpenFixture {
    path: std::path::PathBuf,
    size_bytes: u64,
    end_offset: u64,
}

impl OpenFixture {
    /// Writes the records into one segment just large enough, and closes
    /// it.
    pub(crate) fn build(path: &Path, records: u64) -> Self {
        // 8-byte head and payload per record, a 17-byte marker per 1,000.
        let size_bytes = open_capacity_bytes(records);
        let (writer, _) = build(path, size_bytes, records);
        let end_offset = writer.write_offset();
        writer.close().expect("close");
        OpenFixture {
            path: path.to_path_buf(),
            size_bytes,
            end_offset,
        }
    }

    /// `Writer::open`, which walks the segment to its last commit marker.
    pub(crate) fn open(&self) -> Duration {
        let start = Instant::now();
        let writer =
            Writer::<0>::open(&self.path, usize_of(self.size_bytes), 0).expect("open segment");
        let elapsed = start.elapsed();
        assert_eq!(writer.write_offset(), self.end_offset, "every record found");
        elapsed
    }
}
