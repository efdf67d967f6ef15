//! Concurrent readers: readers running beside the writer see exactly the
//! synced records, in order, and never one the writer had not synced.
//!
//! One writer thread appends `RECORDS` records through the `segwal-std`
//! facade in batches of seeded sizes (single appends and `append_batch`),
//! syncing after each batch, which publishes the new flushed offset. Four
//! reader threads (two from `Writer::reader`, two from `Reader::open` with
//! the writer's `FlushedOffset`) loop: each pass loads the flushed offset,
//! reads from the first record up to it (alternately by `read_record` with
//! `next_offset` and by `Records` iteration) and checks that record `i` is
//! at the offset and holds the payload the writer derives from the seed and
//! `i`, and that it ends at or before the flushed offset as loaded right
//! after the read: the flushed offset only grows, so a record past it is
//! one the writer had not synced. A reader stops after the first pass that
//! has seen all `RECORDS` records, so the test's length is set by the
//! record count, not by a clock; if the writer dies, readers stop after
//! one more pass instead of waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use segwal::ReadHint;
use segwal_std::{FlushedOffset, Reader, Writer};
use segwal_tests::{XorShift, extent, payload, temp_path, test_seed};

const RECORDS: usize = 1500;
const READERS: usize = 4;
const SEGMENT_BYTES: u64 = 4 << 20;

/// Payload length of record `index`: 0..=3000 bytes, some over the 2 KiB
/// a random read fetches.
fn len_of(seed: u64, index: usize) -> usize {
    XorShift::new(seed ^ (index as u64).wrapping_mul(0x9E37)).between(0, 3000)
}

fn payload_of(seed: u64, index: usize) -> Vec<u8> {
    payload(seed, index as u64, len_of(seed, index))
}

/// Offset of each record and one past the last, from the seed alone.
fn layout(seed: u64, records_start: u64) -> Vec<u64> {
    let mut offsets = vec![records_start];
    for index in 0..RECORDS {
        let next = offsets[index] + extent(len_of(seed, index));
        offsets.push(next);
    }
    offsets
}

/// Sets the flag when dropped, even by a panic, so readers never wait for
/// a writer that is gone.
struct DoneOnDrop(Arc<AtomicBool>);

impl Drop for DoneOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

fn write_all(mut writer: Writer, seed: u64, done: &Arc<AtomicBool>) {
    let _done = DoneOnDrop(Arc::clone(done));
    let mut rng = XorShift::new(seed);
    let mut index = 0;
    while index < RECORDS {
        let batch = rng.between(1, 40).min(RECORDS - index);
        if rng.below(2) == 0 {
            for i in index..index + batch {
                writer.append(&payload_of(seed, i)).expect("append");
            }
        } else {
            let payloads: Vec<Vec<u8>> = (index..index + batch)
                .map(|i| payload_of(seed, i))
                .collect();
            let slices: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            writer.append_batch(&slices).expect("append_batch");
        }
        index += batch;
        writer.sync().expect("sync");
    }
}

/// What a reader checks its records against.
struct Expected<'a> {
    flushed: &'a FlushedOffset,
    offsets: &'a [u64],
    seed: u64,
    context: String,
}

impl Expected<'_> {
    /// Checks record `index` as read: place, bytes, and that it was synced.
    fn check(&self, index: usize, offset: u64, bytes: &[u8]) {
        let context = &self.context;
        assert!(index < RECORDS, "{context}: more records than written");
        assert_eq!(
            offset, self.offsets[index],
            "{context}: offset of record {index}"
        );
        let end = self.offsets[index + 1];
        let published = self.flushed.get();
        assert!(
            end <= published,
            "{context}: record {index} ends at {end}, past the flushed offset {published}"
        );
        assert!(
            bytes == payload_of(self.seed, index),
            "{context}: payload of record {index}"
        );
    }
}

/// One reader's loop; returns how many passes it made.
fn read_until_all_seen(mut reader: Reader, expected: &Expected<'_>, done: &AtomicBool) -> u64 {
    let mut passes = 0u64;
    let mut seen_before = usize::MAX;
    loop {
        let writer_done = done.load(Ordering::Acquire);
        passes += 1;
        let seen = if passes.is_multiple_of(2) {
            pass_by_iterator(&mut reader, expected)
        } else {
            pass_by_offset(&mut reader, expected)
        };
        if seen == RECORDS {
            return passes;
        }
        // Nothing new yet: let the writer run rather than spin over the
        // same records (the suite shares the machine with builds).
        if seen == seen_before {
            thread::yield_now();
        }
        seen_before = seen;
        assert!(
            !writer_done,
            "{}: writer finished but only {seen} records readable",
            expected.context
        );
    }
}

/// Reads up to the flushed offset as loaded now by `read_record` and
/// `next_offset`; returns how many records it read.
fn pass_by_offset(reader: &mut Reader, expected: &Expected<'_>) -> usize {
    let context = &expected.context;
    let end = reader.flushed_offset();
    let mut position = reader.records_start();
    let mut index = 0usize;
    while position < end {
        let hint = if index.is_multiple_of(3) {
            ReadHint::Random
        } else {
            ReadHint::Sequential
        };
        let record = reader
            .read_record(position, hint)
            .unwrap_or_else(|e| panic!("{context}: read of record {index} at {position}: {e}"));
        assert_eq!(
            record.next_offset,
            expected.offsets[index + 1],
            "{context}: record {index}"
        );
        expected.check(index, record.offset, &record.payload);
        position = record.next_offset;
        index += 1;
    }
    assert_eq!(
        position, end,
        "{context}: the flushed offset is a record boundary"
    );
    index
}

/// Reads with the `Records` iterator, which follows the flushed offset as
/// it grows; returns how many records it read.
fn pass_by_iterator(reader: &mut Reader, expected: &Expected<'_>) -> usize {
    let start = reader.records_start();
    let mut index = 0;
    for item in reader.iter_from(start) {
        let (offset, bytes) = item
            .unwrap_or_else(|e| panic!("{}: iteration at record {index}: {e}", expected.context));
        expected.check(index, offset, &bytes);
        index += 1;
    }
    index
}

#[test]
fn readers_see_exactly_the_synced_records() {
    let seed = test_seed(0xC0C0_8EAD);
    let (_dir, path) = temp_path("concurrent.log");
    let writer = Writer::create(&path, SEGMENT_BYTES, 0).expect("create");
    let offsets = Arc::new(layout(seed, writer.records_start()));
    assert!(offsets[RECORDS] <= SEGMENT_BYTES, "the records fit");
    let flushed = writer.flushed_offset();
    let done = Arc::new(AtomicBool::new(false));

    let readers: Vec<_> = (0..READERS)
        .map(|n| {
            let reader = if n % 2 == 0 {
                writer.reader().expect("writer.reader")
            } else {
                Reader::open(&path, Some(flushed.clone())).expect("Reader::open")
            };
            let (flushed, offsets, done) =
                (flushed.clone(), Arc::clone(&offsets), Arc::clone(&done));
            thread::spawn(move || {
                let expected = Expected {
                    flushed: &flushed,
                    offsets: &offsets,
                    seed,
                    context: format!("reader {n} seed {seed:#x}"),
                };
                read_until_all_seen(reader, &expected, &done)
            })
        })
        .collect();
    let writer_thread = {
        let done = Arc::clone(&done);
        thread::spawn(move || write_all(writer, seed, &done))
    };

    writer_thread.join().expect("writer thread");
    assert_eq!(
        flushed.get(),
        offsets[RECORDS],
        "seed {seed:#x}: all synced"
    );
    for (n, reader) in readers.into_iter().enumerate() {
        let passes = reader
            .join()
            .unwrap_or_else(|_| panic!("reader {n} failed (seed {seed:#x})"));
        println!("reader {n}: {passes} passes");
    }
}
