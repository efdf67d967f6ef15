//! Read counts: reads cost the device calls the read planner promises.
//!
//! Measured with `RamDevice::stats()`, which counts every `read` call and
//! the bytes it returned:
//!
//! - a `ReadHint::Random` read of a record with a payload of 2048 bytes or
//!   less is exactly one device read (header and 2 KiB in one go), for
//!   every payload size from 0 to 64 and then a spread up to 2048; it reads
//!   the header plus 2 KiB, or up to the flushed offset when that is
//!   closer;
//! - a random read of a 2049..=4000-byte payload is exactly two: the
//!   header read, then the missing tail, and no byte twice;
//! - a `ReadHint::Sequential` pass over a whole segment of records up to
//!   4000 bytes reads each byte about once (at most 10% more, plus one
//!   window) in about one call per 64 KiB window;
//! - a sequential pass over records larger than the 64 KiB buffer reads
//!   them straight into the output, still about once;
//! - the recovery scan of `SegmentWriter::open` reads the segment about
//!   once, in 64 KiB reads.
//!
//! Every read starts from a fresh `SegmentReader`, so no window left by an
//! earlier read can hide a device call.

use segwal::{ReadHint, RecoveryMode, SEQUENTIAL_WINDOW_BYTES};
use segwal_tests::{
    Medium, RamMedium, Written, XorShift, append_all, config_for, create_segment, extent,
    open_reader, open_writer, payload, read_all, test_seed,
};

const SEGMENT_BYTES: u32 = 2 << 20;
const WINDOW: u64 = SEQUENTIAL_WINDOW_BYTES;
/// Header and 2 KiB: what one random read fetches.
const RANDOM_READ: u64 = 16 + 2048;

/// Every size from 0 to 64, a spread to 4000, and every size around the
/// 2048/2049 boundary and near 4000.
fn sizes() -> Vec<usize> {
    let mut sizes: Vec<usize> = (0..=64).collect();
    sizes.extend((65..4000).step_by(61));
    sizes.extend(2036..=2060);
    sizes.extend(3990..=4000);
    sizes
}

/// A fresh reader of the segment, then stats reset: what one read with
/// `hint` costs.
fn measure_read(
    medium: &RamMedium,
    flushed: u64,
    record: &Written,
    hint: ReadHint,
    context: &str,
) -> segwal_ram::Stats {
    let mut reader = open_reader(medium, flushed);
    medium.ram().reset_stats();
    let read = reader
        .read_record(record.offset, hint)
        .unwrap_or_else(|e| panic!("{context}: {e}"));
    assert!(*read.payload == record.payload[..], "{context}: payload");
    medium.ram().stats()
}

#[test]
fn random_reads_take_one_call_up_to_2_kib_and_two_beyond() {
    let seed = test_seed(0xC0C0_0001);
    let medium = RamMedium::new(SEGMENT_BYTES);
    let mut writer = create_segment(
        &medium,
        &config_for(&medium, segwal::ChecksumKind::Crc32c),
        seed,
    );
    let written = append_all(
        &mut writer,
        sizes()
            .into_iter()
            .enumerate()
            .map(|(i, len)| payload(seed, i as u64, len))
            .collect::<Vec<_>>(),
    );
    let flushed = writer.sync().expect("sync");
    drop(writer);
    let mut ones = 0;
    for record in &written {
        let len = record.payload.len();
        let context = format!("seed {seed:#x} payload of {len} bytes at {}", record.offset);
        let stats = measure_read(&medium, flushed, record, ReadHint::Random, &context);
        assert_eq!(stats.write_calls, 0, "{context}");
        if len <= 2048 {
            ones += 1;
            assert_eq!(stats.read_calls, 1, "{context}: one device read");
            assert_eq!(
                stats.read_bytes,
                RANDOM_READ.min(flushed - record.offset),
                "{context}"
            );
        } else {
            assert_eq!(stats.read_calls, 2, "{context}: header read, then the tail");
            assert_eq!(
                stats.read_bytes,
                extent(len),
                "{context}: no byte read twice"
            );
        }
    }
    assert!(ones > 100, "the small sizes were measured");
}

/// The last record of a segment is read in one call whatever the flushed
/// offset leaves after it.
#[test]
fn random_read_of_the_last_record_stops_at_the_flushed_offset() {
    let seed = test_seed(0xC0C0_0002);
    for len in [0, 1, 100, 2040, 2048] {
        let medium = RamMedium::new(64 * 1024);
        let mut writer = create_segment(
            &medium,
            &config_for(&medium, segwal::ChecksumKind::Crc32),
            seed,
        );
        let written = append_all(&mut writer, [payload(seed, 0, 3000), payload(seed, 1, len)]);
        let flushed = writer.sync().expect("sync");
        drop(writer);
        let context = format!("seed {seed:#x} last payload {len}");
        let stats = measure_read(&medium, flushed, &written[1], ReadHint::Random, &context);
        assert_eq!(stats.read_calls, 1, "{context}");
        assert_eq!(
            stats.read_bytes,
            extent(len),
            "{context}: nothing past the flushed offset"
        );
    }
}

/// Fills a segment with records of `len_range` bytes until about
/// `used_target` bytes are used; returns the records and the flushed
/// offset.
fn filled(
    medium: &RamMedium,
    seed: u64,
    len_range: (usize, usize),
    used_target: u64,
) -> (Vec<Written>, u64) {
    let mut writer = create_segment(
        medium,
        &config_for(medium, segwal::ChecksumKind::Crc32c),
        seed,
    );
    let mut rng = XorShift::new(seed);
    let mut written = Vec::new();
    let mut index = 0;
    while writer.written_offset() < used_target {
        index += 1;
        let len = rng.between(len_range.0, len_range.1);
        written.extend(append_all(&mut writer, [payload(seed, index, len)]));
    }
    let flushed = writer.sync().expect("sync");
    (written, flushed)
}

fn sequential_pass(
    medium: &RamMedium,
    written: &[Written],
    flushed: u64,
    context: &str,
) -> segwal_ram::Stats {
    let mut reader = open_reader(medium, flushed);
    medium.ram().reset_stats();
    let all = read_all(&mut reader).unwrap_or_else(|e| panic!("{context}: {e}"));
    let stats = medium.ram().stats();
    segwal_tests::assert_same_records(&all, written, context);
    stats
}

#[test]
fn a_sequential_pass_reads_each_byte_about_once() {
    let seed = test_seed(0xC0C0_0003);
    let medium = RamMedium::new(SEGMENT_BYTES);
    let (written, flushed) = filled(&medium, seed, (0, 4000), 1_500_000);
    let used = flushed - medium_records_start(&medium);
    let context = format!("seed {seed:#x} {used} bytes of records");
    let stats = sequential_pass(&medium, &written, flushed, &context);
    assert!(
        stats.read_bytes * 10 <= used * 11 + WINDOW * 10,
        "{context}: {} bytes read",
        stats.read_bytes
    );
    assert!(stats.read_bytes >= used, "{context}: every byte was read");
    // A window ends inside a record at most 4016 bytes long and the next
    // one starts at that record: each window moves on by at least
    // `WINDOW - 4016` bytes.
    let calls_max = used.div_ceil(WINDOW - 4016) + 1;
    assert!(
        stats.read_calls <= calls_max,
        "{context}: {} read calls, at most {calls_max} (about {} windows)",
        stats.read_calls,
        used / WINDOW
    );
}

#[test]
fn records_larger_than_the_buffer_are_read_about_once() {
    let seed = test_seed(0xC0C0_0004);
    let medium = RamMedium::new(SEGMENT_BYTES);
    let (written, flushed) = filled(&medium, seed, (60_000, 150_000), 1_500_000);
    let used = flushed - medium_records_start(&medium);
    let context = format!("seed {seed:#x} {} records, {used} bytes", written.len());
    let stats = sequential_pass(&medium, &written, flushed, &context);
    assert!(
        stats.read_bytes * 10 <= used * 11 + WINDOW * 10,
        "{context}: {} bytes read",
        stats.read_bytes
    );
    // Per record: a window with its header, then the rest straight into
    // the output; no more.
    let calls_max = 2 * written.len() as u64 + 1;
    assert!(
        stats.read_calls <= calls_max,
        "{context}: {} read calls",
        stats.read_calls
    );
}

#[test]
fn the_recovery_scan_reads_the_segment_about_once() {
    let seed = test_seed(0xC0C0_0005);
    let mut medium = RamMedium::new(SEGMENT_BYTES);
    let (written, _) = filled(&medium, seed, (0, 4000), 1_000_000);
    medium.reboot();
    medium.ram().reset_stats();
    let (_, recovered) = open_writer(&medium, RecoveryMode::Strict).expect("open");
    let stats = medium.ram().stats();
    assert_eq!(recovered.record_count, written.len() as u64);
    let segment = u64::from(SEGMENT_BYTES);
    let context = format!("seed {seed:#x}");
    assert!(
        stats.read_bytes * 10 <= segment * 11 + WINDOW * 10,
        "{context}: {} bytes read for a {segment}-byte segment",
        stats.read_bytes
    );
    let calls_max = segment.div_ceil(WINDOW - 4016) + 2;
    assert!(
        stats.read_calls <= calls_max,
        "{context}: {} read calls",
        stats.read_calls
    );
    assert_eq!(
        stats.write_calls, 0,
        "{context}: a clean open writes nothing"
    );
}

fn medium_records_start(medium: &RamMedium) -> u64 {
    open_reader(medium, 0).records_start()
}

/// `Wal::read` by LSN, once the log's offset index has the segment: one
/// device read of exactly the record (header, payload, padding), whatever
/// its size up to the read buffer, not a header and 2 KiB.
#[test]
fn a_read_by_lsn_reads_exactly_the_record() {
    use segwal_tests::wal_support::{self, open_ram, ram_config};

    let seed = test_seed(0xC0C0_0003);
    let mut wal = open_ram(segwal_ram::RamStore::new(seed), ram_config(1 << 20)).expect("open");
    let lens: Vec<usize> = sizes().into_iter().chain([6000, 20_000]).collect();
    for (index, &len) in lens.iter().enumerate() {
        wal.append(&wal_support::payload_with_len(seed, index as u64, len))
            .expect("append");
    }
    assert_eq!(wal.segment_count(), 1, "one segment: one index entry");
    // The first read walks the segment and keeps its offsets; it reads the
    // last record, which no read below can then find in the window.
    wal.read(segwal::Lsn(lens.len() as u64)).expect("read");
    // The last record has no successor in the index to measure it by.
    for (index, &len) in lens.iter().enumerate().take(lens.len() - 1) {
        let lsn = segwal::Lsn(index as u64 + 1);
        let context = format!("seed {seed:#x} payload of {len} bytes, {lsn:?}");
        let device = wal
            .store_mut()
            .segments()
            .values()
            .next()
            .expect("segment")
            .device()
            .clone();
        device.reset_stats();
        let payload = wal.read(lsn).unwrap_or_else(|e| panic!("{context}: {e}"));
        assert!(
            *payload == wal_support::payload_with_len(seed, index as u64, len)[..],
            "{context}: payload"
        );
        let stats = device.stats();
        assert_eq!(stats.read_calls, 1, "{context}: one device read");
        assert_eq!(
            stats.read_bytes,
            extent(len),
            "{context}: the record and nothing more"
        );
    }
}

/// A random read with the hint of the handle `append` returned: one device
/// read of exactly the record's extent (header, payload, padding), whatever
/// its size up to the reader's buffer (a plain `Random` read takes a header
/// and 2 KiB).
#[test]
fn a_read_with_the_append_handle_reads_exactly_the_record() {
    let seed = test_seed(0xC0C0_0004);
    let medium = RamMedium::new(SEGMENT_BYTES);
    let mut writer = create_segment(
        &medium,
        &config_for(&medium, segwal::ChecksumKind::Crc32c),
        seed,
    );
    let handles: Vec<(segwal::Appended, Written)> = sizes()
        .into_iter()
        .chain([6000, 20_000])
        .enumerate()
        .map(|(i, len)| {
            let payload = payload(seed, i as u64, len);
            let appended = writer.append(&payload).expect("append");
            let offset = appended.offset;
            (appended, Written { offset, payload })
        })
        .collect();
    let flushed = writer.sync().expect("sync");
    drop(writer);
    for (appended, record) in &handles {
        let context = format!("seed {seed:#x} {appended:?}");
        let stats = measure_read(&medium, flushed, record, appended.read_hint(), &context);
        assert_eq!(stats.read_calls, 1, "{context}: one device read");
        assert_eq!(
            stats.read_bytes,
            extent(record.payload.len()),
            "{context}: the record, nothing more"
        );
    }
}
