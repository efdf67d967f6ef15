//! `SharedWal` hands out every LSN exactly once under concurrent appends,
//! and each LSN keeps the payload it was handed out for.
//!
//! Eight threads each append 500 records whose payloads encode the thread,
//! the record's index and seeded filler, into 64 KiB segments, so rotation
//! happens while appends and group-commit syncs race. The LSNs returned,
//! collected and sorted, must be exactly `1..=4000`, increasing within each
//! thread; after a reopen every LSN must read back the payload its append
//! was answered for. Two reader threads call `read` while the writers run:
//! every LSN below `next_lsn` must read back a payload some writer sent,
//! and the one that writer was later answered with; reads past the end
//! must be `LsnOutOfRange`. A second test does the same with batches, which
//! must each get a contiguous range. One printed seed drives the filler.

use segwal_tests::wal_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use segwal::Lsn;
use segwal_std::{SharedWal, Wal};
use wal_support::{Rng, payload_with_len, std_contents, std_options};

const THREADS: u32 = 8;
const RECORDS_PER_THREAD: u32 = 500;
const SEGMENT_BYTES: u64 = 64 * 1024;
/// Reads each reader makes at least, however fast the writers finish.
const READS_MIN: u32 = 200;
/// Reads each reader makes at most: a bound on its loop.
const READS_MAX: u32 = 1_000_000;

/// The payload of record `index` of thread `thread`: both as 4 bytes each,
/// then 0 to 150 bytes of filler from the seed.
fn record(seed: u64, thread: u32, index: u32) -> Vec<u8> {
    let tag = (u64::from(thread) << 32) | u64::from(index);
    let len = usize::try_from((seed ^ tag).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56)
        .expect("byte")
        * 150
        / 255;
    let mut out = Vec::with_capacity(8 + len);
    out.extend_from_slice(&thread.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&payload_with_len(seed, tag, len));
    out
}

/// The `(thread, index)` a payload was made for, when it is exactly one of
/// [`record`]'s.
fn decode(seed: u64, bytes: &[u8]) -> Option<(u32, u32)> {
    let thread = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
    let index = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    (thread < THREADS && record(seed, thread, index) == bytes).then_some((thread, index))
}

/// Reads random LSNs below `next_lsn` until `done` (and at least
/// [`READS_MIN`] times); returns what each LSN held.
fn reader(wal: &SharedWal, done: &AtomicBool, seed: u64, which: u64) -> Vec<(u64, u32, u32)> {
    let mut rng = Rng::new(seed ^ which);
    let mut seen = Vec::new();
    for reads in 0..READS_MAX {
        if done.load(Ordering::SeqCst) && reads >= READS_MIN {
            break;
        }
        let next = wal.next_lsn().0;
        // Past every LSN the test hands out.
        let beyond = u64::from(THREADS * RECORDS_PER_THREAD) + 1;
        match wal.read(Lsn(beyond)) {
            Err(e) if matches!(e.as_log(), Some(segwal::Error::LsnOutOfRange { .. })) => {}
            other => panic!("read past the end: {other:?}"),
        }
        if next == 1 {
            continue;
        }
        let lsn = rng.between(1, next - 1);
        let bytes = wal
            .read(Lsn(lsn))
            .unwrap_or_else(|e| panic!("read({lsn}) below next_lsn {next}: {e}"));
        let (thread, index) =
            decode(seed, &bytes).unwrap_or_else(|| panic!("read({lsn}): bytes no writer sent"));
        seen.push((lsn, thread, index));
    }
    seen
}

/// `(LSN, thread, record index)`: an append's answer, or a reader's sight.
type Sighting = (u64, u32, u32);

/// Joins the writers, then stops and joins the readers: every writer's
/// answers by LSN (each LSN handed out once), and everything the readers
/// saw.
fn join_all(
    writers: Vec<thread::JoinHandle<Vec<Sighting>>>,
    readers: Vec<thread::JoinHandle<Vec<Sighting>>>,
    done: &AtomicBool,
) -> (BTreeMap<u64, (u32, u32)>, Vec<Sighting>) {
    let mut answers = BTreeMap::new();
    for writer in writers {
        for (lsn, thread, index) in writer.join().expect("writer") {
            assert!(
                answers.insert(lsn, (thread, index)).is_none(),
                "LSN {lsn} handed out twice"
            );
        }
    }
    done.store(true, Ordering::SeqCst);
    let seen = readers
        .into_iter()
        .flat_map(|r| r.join().expect("reader"))
        .collect();
    (answers, seen)
}

/// Checks the answers against what readers saw and the reopened log.
fn check_answers(
    dir: &std::path::Path,
    seed: u64,
    answers: &BTreeMap<u64, (u32, u32)>,
    seen: &[(u64, u32, u32)],
) {
    let total = u64::from(THREADS * RECORDS_PER_THREAD);
    let lsns: Vec<u64> = answers.keys().copied().collect();
    assert_eq!(lsns.len() as u64, total, "an LSN handed out twice");
    assert_eq!(
        lsns,
        (1..=total).collect::<Vec<_>>(),
        "LSNs are 1..={total} without gaps"
    );
    for &(lsn, thread, index) in seen {
        assert_eq!(
            answers[&lsn],
            (thread, index),
            "a reader saw at LSN {lsn} the record of another append"
        );
    }
    let mut wal = Wal::open_with(dir, &std_options(SEGMENT_BYTES)).expect("reopen");
    assert_eq!(wal.next_lsn().0, total + 1, "next LSN after reopen");
    assert!(
        wal.segment_count() >= 3,
        "rotated under load: {} segments",
        wal.segment_count()
    );
    let contents = std_contents(&mut wal).expect("read back");
    for (offset, bytes) in contents.records.iter().enumerate() {
        let lsn = contents.first_lsn + offset as u64;
        let (thread, index) = answers[&lsn];
        assert!(
            *bytes == record(seed, thread, index),
            "LSN {lsn} holds another payload than the one of thread {thread} record {index}"
        );
    }
}

#[test]
fn every_lsn_is_handed_out_once_and_keeps_its_payload() {
    let seed = wal_support::seed(0x54A2ED);
    let dir = tempfile::tempdir().expect("temporary directory");
    let wal = SharedWal::open(dir.path(), &std_options(SEGMENT_BYTES)).expect("open");
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2u64)
        .map(|which| {
            let (wal, done) = (wal.clone(), Arc::clone(&done));
            thread::spawn(move || reader(&wal, &done, seed, which))
        })
        .collect();
    let writers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let wal = wal.clone();
            thread::spawn(move || {
                let mut answers = Vec::new();
                let mut last = 0;
                for index in 0..RECORDS_PER_THREAD {
                    let lsn = wal
                        .append(&record(seed, thread, index))
                        .unwrap_or_else(|e| panic!("thread {thread} append {index}: {e}"))
                        .0;
                    assert!(lsn > last, "thread {thread}: LSN {lsn} after {last}");
                    last = lsn;
                    answers.push((lsn, thread, index));
                }
                answers
            })
        })
        .collect();
    let (answers, seen) = join_all(writers, readers, &done);
    assert!(seen.len() >= 2 * READS_MIN as usize, "readers read");
    assert_eq!(
        wal.next_lsn().0,
        u64::from(THREADS * RECORDS_PER_THREAD) + 1
    );
    drop(wal);
    check_answers(dir.path(), seed, &answers, &seen);
}

#[test]
fn concurrent_batches_each_get_one_contiguous_range() {
    let seed = wal_support::seed(0xBA7C4);
    let dir = tempfile::tempdir().expect("temporary directory");
    let wal = SharedWal::open(dir.path(), &std_options(SEGMENT_BYTES)).expect("open");
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2u64)
        .map(|which| {
            let (wal, done) = (wal.clone(), Arc::clone(&done));
            thread::spawn(move || reader(&wal, &done, seed, which))
        })
        .collect();
    let writers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let wal = wal.clone();
            thread::spawn(move || {
                let mut rng = Rng::new(seed ^ u64::from(thread));
                let mut answers = Vec::new();
                let mut index = 0;
                // Bounded: every batch takes at least one record.
                while index < RECORDS_PER_THREAD {
                    let count = u32::try_from(rng.between(1, 6))
                        .expect("small")
                        .min(RECORDS_PER_THREAD - index);
                    let batch: Vec<Vec<u8>> = (index..index + count)
                        .map(|i| record(seed, thread, i))
                        .collect();
                    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                    let range = wal
                        .append_batch(&refs)
                        .unwrap_or_else(|e| panic!("thread {thread} batch at {index}: {e}"));
                    assert_eq!(
                        range.end.0 - range.start.0,
                        u64::from(count),
                        "one LSN per record"
                    );
                    for (offset, lsn) in (range.start.0..range.end.0).enumerate() {
                        let i = index + u32::try_from(offset).expect("small");
                        answers.push((lsn, thread, i));
                    }
                    index += count;
                }
                answers
            })
        })
        .collect();
    let (answers, seen) = join_all(writers, readers, &done);
    drop(wal);
    check_answers(dir.path(), seed, &answers, &seen);
}
