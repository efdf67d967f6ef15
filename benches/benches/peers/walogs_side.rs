//! walogs 0.1's side: `Wal::append` (write, then `fdatasync`: every
//! append is durable, there is no batch and no manual sync), `Wal::iter`
//! and `Wal::open`, with the default 64 MiB segments.
//!
//! The logs read in W5 and W6 are written directly in walogs' frame format
//! (`len u32 | crc32 u32 | lsn u64 | data`, the CRC-32 over length, LSN
//! and data, segments `wal-NNNNNN.log` rotated before a frame would pass
//! 64 MiB), because building them through `append` would take one
//! `fdatasync` per record (about 5 minutes for a million). Each one is
//! checked by walogs itself before use: `Wal::open` verifies every frame,
//! and must find every record and a clean tail.

use std::fs::{self, File};
use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crc::{CRC_32_ISO_HDLC, Crc};
use segwal_benches::payload;
use segwal_benches::rounds::Slices;
use tempfile::TempDir;
use walogs::{TailState, Wal, WalConfig};

use crate::{APPEND_LEN_BYTES, fresh_dir, index_of, indexed_payload};

/// walogs' CRC-32 (the one `crc32fast` computes).
static CRC32: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);

/// walogs' default segment size, at which it rotates.
const SEGMENT_SIZE_MAX_BYTES: u64 = 64 << 20;

/// W1: `Wal::append`, durable when it returns.
pub(crate) struct Appends {
    wal: Wal,
    /// Dropped after `wal`.
    _dir: TempDir,
    record: Vec<u8>,
}

impl Appends {
    /// A fresh log with one record.
    pub(crate) fn new() -> Self {
        let dir = fresh_dir();
        let mut wal =
            Wal::open_with_config(&dir.path().join("wal"), WalConfig::default()).expect("open log");
        let record = payload(APPEND_LEN_BYTES);
        wal.append(&record).expect("warm-up append");
        Appends {
            wal,
            _dir: dir,
            record,
        }
    }
}

impl Slices for Appends {
    fn run(&mut self, records: u64) -> Duration {
        let before = self.wal.next_lsn().0;
        let start = Instant::now();
        for _ in 0..records {
            black_box(self.wal.append(&self.record).expect("append"));
        }
        let elapsed = start.elapsed();
        assert_eq!(self.wal.next_lsn().0 - before, records, "every record in");
        elapsed
    }
}

/// One frame of walogs' format.
fn frame(lsn: u64, data: &[u8]) -> Vec<u8> {
    let len_bytes = u32::try_from(data.len())
        .expect("a small record")
        .to_le_bytes();
    let lsn_bytes = lsn.to_le_bytes();
    let mut digest = CRC32.digest();
    digest.update(&len_bytes);
    digest.update(&lsn_bytes);
    digest.update(data);
    let mut bytes = Vec::with_capacity(16 + data.len());
    bytes.extend_from_slice(&len_bytes);
    bytes.extend_from_slice(&digest.finalize().to_le_bytes());
    bytes.extend_from_slice(&lsn_bytes);
    bytes.extend_from_slice(data);
    bytes
}

/// Writes and syncs one segment file of `dir`.
fn write_segment(dir: &Path, sequence: u32, bytes: &[u8]) {
    let mut file = File::create(dir.join(format!("wal-{sequence:06}.log"))).expect("create");
    file.write_all(bytes).expect("write segment");
    file.sync_all().expect("sync segment");
}

/// Writes a log of `records` indexed records (LSNs from 1) into `dir` as
/// walogs would, and checks it opens clean with every record.
pub(crate) fn write_log(dir: &Path, records: u64) {
    fs::create_dir_all(dir).expect("create log dir");
    let mut sequence = 1u32;
    let mut segment = Vec::new();
    for index in 0..records {
        let bytes = frame(index + 1, &indexed_payload(index));
        if !segment.is_empty() && (segment.len() + bytes.len()) as u64 > SEGMENT_SIZE_MAX_BYTES {
            write_segment(dir, sequence, &segment);
            segment.clear();
            sequence += 1;
        }
        segment.extend_from_slice(&bytes);
    }
    write_segment(dir, sequence, &segment);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .expect("sync dir");
    let wal = Wal::open(dir).expect("walogs opens the log");
    assert_eq!(wal.next_lsn().0, records + 1, "walogs finds every record");
    assert_eq!(wal.tail_state(), TailState::Clean, "and a clean tail");
}

/// W5: the log, opened once.
pub(crate) struct Reads {
    wal: Wal,
    records: u64,
}

impl Reads {
    /// Writes the log and opens it.
    pub(crate) fn build(dir: &Path, records: u64) -> Self {
        write_log(dir, records);
        let wal = Wal::open(dir).expect("open log");
        Reads { wal, records }
    }

    /// W5: `Wal::iter` over every record (each a fresh `Vec`, CRC checked).
    pub(crate) fn scan(&mut self) -> Duration {
        let start = Instant::now();
        let mut expected = 0u64;
        for entry in self.wal.iter() {
            let (_, record) = entry.expect("iter");
            assert_eq!(index_of(&record), expected, "records in order");
            expected += 1;
        }
        let elapsed = start.elapsed();
        assert_eq!(expected, self.records, "every record scanned");
        elapsed
    }
}

/// W6: `Wal::open` of the log in `dir`, which scans and checks every frame.
pub(crate) fn open(dir: &Path, records: u64) -> Duration {
    let start = Instant::now();
    let wal = Wal::open(dir).expect("open log");
    let elapsed = start.elapsed();
    assert_eq!(wal.next_lsn().0, records + 1, "every record found");
    elapsed
}
