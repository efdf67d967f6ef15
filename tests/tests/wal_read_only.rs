//! A read-only `segwal_std::Wal` beside a writer in the same process
//! (read-only takes no lock) sees every record synced when it opened, sees
//! the writer's appends, checkpoints and truncations after `refresh`, and
//! never writes a byte.
//!
//! - Following: the reader's view is fixed at open (LSNs appended later are
//!   `LsnOutOfRange`) and `refresh` brings it up to the writer's, through
//!   rotations, a checkpoint, a truncation and a clean close.
//! - Following a live writer: a reader thread refreshes while the writer
//!   thread appends; each refresh must succeed and show at least every
//!   record acknowledged before it started, each with its payload.
//! - Writing nothing: every write is refused with `ReadOnly`, and the bytes
//!   and names of every file in the directory (`LOCK` included) are the
//!   same before and after the reader, even for a directory a crash left
//!   needing repair (a torn tail, segments an interrupted truncation cut
//!   off, an allocation cut short, a stale `.prepared` file), which the
//!   reader reports but leaves for the next writer.
//! - One segment of a cleanly closed log, read with the single-segment
//!   `Reader`: its records, then the end, not the clean-close marker.
//!
//! One printed seed drives the payloads.

use segwal_tests::wal_support;

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use segwal::{Lsn, WalTailState};
use segwal_std::Wal;
use tempfile::TempDir;
use wal_support::{
    LogModel, Rng, copy_segments, payload_with_len, restore, segment_file_name, snapshot_dir,
    snapshot_segments, std_contents, std_options, write_at,
};

const SEGMENT_BYTES: u64 = 64 * 1024;

/// Payloads of a few hundred bytes to a kilobyte and a half.
fn entry(seed: u64, lsn: u64) -> Vec<u8> {
    payload_with_len(seed, lsn, 300 + wal_support::payload_len(seed, lsn) * 4)
}

fn temp_dir() -> TempDir {
    tempfile::tempdir().expect("temporary directory")
}

fn open_writer(dir: &Path) -> Wal {
    Wal::open_with(dir, &std_options(SEGMENT_BYTES)).expect("open the writer")
}

fn append(writer: &mut Wal, model: &mut LogModel, seed: u64, count: u64) {
    for _ in 0..count {
        let bytes = entry(seed, model.next_lsn() ^ (model.first_lsn << 32));
        assert_eq!(
            writer.append(&bytes).expect("append").0,
            model.append(bytes)
        );
    }
}

fn assert_sees(reader: &mut Wal, model: &LogModel, context: &str) {
    std_contents(reader)
        .unwrap_or_else(|e| panic!("{context}: read back: {e}"))
        .assert_matches(&model.contents(), context);
}

fn is_out_of_range<T>(result: &segwal_std::Result<T>) -> bool {
    matches!(result, Err(e) if matches!(e.as_log(), Some(segwal::Error::LsnOutOfRange { .. })))
}

#[test]
fn a_reader_sees_the_log_as_of_open_and_the_writer_s_changes_after_refresh() {
    let seed = wal_support::seed(0x4EAD);
    let dir = temp_dir();
    let mut writer = open_writer(dir.path());
    let mut model = LogModel::new();
    append(&mut writer, &mut model, seed, 80);
    let mut reader = Wal::open_read_only(dir.path()).expect("read-only open beside the writer");
    assert_sees(&mut reader, &model, "at open");

    // The view is fixed until refresh.
    let seen = model.clone();
    append(&mut writer, &mut model, seed, 80);
    assert!(
        writer.segment_count() >= 3,
        "rotated: {}",
        writer.segment_count()
    );
    assert_eq!(
        reader.next_lsn().0,
        seen.next_lsn(),
        "the view moved without refresh"
    );
    assert!(
        is_out_of_range(&reader.read(Lsn(seen.next_lsn()))),
        "read past the view"
    );
    assert_sees(&mut reader, &seen, "before refresh");
    reader.refresh().expect("refresh");
    assert_sees(&mut reader, &model, "after appends and refresh");

    let cut = writer.segments()[2].header.base_lsn;
    assert!(
        writer.checkpoint(Lsn(cut)).expect("checkpoint") >= 2,
        "checkpoint removed segments"
    );
    model.drop_before(writer.first_lsn().0);
    reader.refresh().expect("refresh");
    assert_sees(&mut reader, &model, "after a checkpoint and refresh");
    assert!(
        is_out_of_range(&reader.read(Lsn(1))),
        "a checkpointed LSN still reads"
    );

    let keep = model.first_lsn + 7;
    writer.truncate_after(Lsn(keep)).expect("truncate_after");
    model.truncate_after(keep);
    append(&mut writer, &mut model, seed, 5);
    reader.refresh().expect("refresh");
    assert_sees(
        &mut reader,
        &model,
        "after truncate_after, appends and refresh",
    );

    drop(writer);
    reader.refresh().expect("refresh");
    assert_eq!(
        reader.tail_state(),
        WalTailState::Clean,
        "after the writer closed"
    );
    assert_sees(&mut reader, &model, "after the writer closed");
}

#[test]
fn a_reader_following_a_live_writer_sees_every_acknowledged_record() {
    let seed = wal_support::seed(0xF011);
    const RECORDS: u64 = 400;
    const REFRESHES_MAX: u64 = 10_000_000;
    let dir = temp_dir();
    let mut writer = open_writer(dir.path());
    let acknowledged = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let writing = {
        let (acknowledged, done) = (Arc::clone(&acknowledged), Arc::clone(&done));
        thread::spawn(move || {
            for lsn in 1..=RECORDS {
                assert_eq!(writer.append(&entry(seed, lsn)).expect("append").0, lsn);
                acknowledged.store(lsn, Ordering::SeqCst);
            }
            done.store(true, Ordering::SeqCst);
            writer
        })
    };
    let mut reader = loop {
        // The writer creates the directory's first segment; until then a
        // reader has nothing to open.
        if acknowledged.load(Ordering::SeqCst) > 0 {
            break Wal::open_read_only(dir.path()).expect("read-only open");
        }
        thread::yield_now();
    };
    let mut checked = 0u64;
    let mut refreshes = 0u64;
    for _ in 0..REFRESHES_MAX {
        let finished = done.load(Ordering::SeqCst);
        let before = acknowledged.load(Ordering::SeqCst);
        reader
            .refresh()
            .unwrap_or_else(|e| panic!("refresh {refreshes} beside the writer: {e}"));
        refreshes += 1;
        let next = reader.next_lsn().0;
        assert_eq!(reader.first_lsn().0, 1, "refresh {refreshes}");
        assert!(
            next > before,
            "refresh {refreshes}: sees up to {} but {before} were acknowledged before it",
            next - 1
        );
        assert!(
            next <= RECORDS + 1,
            "refresh {refreshes}: sees {next}, more than written"
        );
        // The newly visible records, each once.
        for lsn in checked + 1..next {
            let bytes = reader
                .read(Lsn(lsn))
                .unwrap_or_else(|e| panic!("refresh {refreshes}: read({lsn}): {e}"));
            assert!(
                bytes == entry(seed, lsn),
                "refresh {refreshes}: LSN {lsn} holds other bytes"
            );
        }
        checked = checked.max(next - 1);
        if finished {
            break;
        }
    }
    let writer = writing.join().expect("writer thread");
    assert_eq!(checked, RECORDS, "the last refresh saw everything");
    assert!(
        writer.segment_count() >= 4,
        "rotated: {}",
        writer.segment_count()
    );
    println!("{refreshes} refreshes beside the writer");
}

/// Checkpoints remove segment files while a reader lists and opens them: a
/// refresh must still succeed, showing the log before or after the
/// checkpoint.
#[test]
fn a_reader_refreshing_beside_checkpoints_never_fails() {
    let seed = wal_support::seed(0xC4EC);
    const ROUNDS: u64 = 200;
    const REFRESHES_MAX: u64 = 1_000_000;
    let dir = temp_dir();
    let mut writer = open_writer(dir.path());
    let done = Arc::new(AtomicBool::new(false));
    let writing = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let mut model = LogModel::new();
            for _ in 0..ROUNDS {
                let segments = writer.segment_count();
                // Bounded: a segment holds at most 64 KiB / 300 bytes of entries.
                for _ in 0..SEGMENT_BYTES / 300 + 1 {
                    if writer.segment_count() > segments {
                        break;
                    }
                    append(&mut writer, &mut model, seed, 1);
                }
                if writer.segment_count() > 3 {
                    let second = writer.segments()[1].header.base_lsn;
                    writer.checkpoint(Lsn(second)).expect("checkpoint");
                    model.drop_before(writer.first_lsn().0);
                }
            }
            done.store(true, Ordering::SeqCst);
            model
        })
    };
    let mut reader = Wal::open_read_only(dir.path()).expect("read-only open");
    let mut failures = Vec::new();
    let mut refreshes = 0u64;
    for _ in 0..REFRESHES_MAX {
        if done.load(Ordering::SeqCst) {
            break;
        }
        refreshes += 1;
        if let Err(e) = reader.refresh() {
            failures.push(e.to_string());
        }
    }
    let model = writing.join().expect("writer thread");
    reader.refresh().expect("refresh after the writer stopped");
    assert_sees(&mut reader, &model, "after the writer stopped");
    assert!(
        failures.is_empty(),
        "{} of {refreshes} refreshes failed, the first: {}",
        failures.len(),
        failures[0]
    );
}

/// Attempts every write through a read-only log; each must be refused.
fn assert_refuses_writes(reader: &mut Wal, context: &str) {
    let read_only = |r: segwal_std::Result<()>| matches!(r, Err(e) if matches!(e.as_log(), Some(segwal::Error::ReadOnly)));
    assert!(
        read_only(reader.append(b"x").map(drop)),
        "{context}: append"
    );
    assert!(
        read_only(reader.append_batch(&[b"x", b"y"]).map(drop)),
        "{context}: append_batch"
    );
    assert!(read_only(reader.sync()), "{context}: sync");
    assert!(
        read_only(reader.checkpoint(Lsn(reader.first_lsn().0)).map(drop)),
        "{context}: checkpoint"
    );
    assert!(
        read_only(reader.truncate_after(Lsn(reader.first_lsn().0))),
        "{context}: truncate_after"
    );
}

/// Reads everything every way a reader can, refreshes, and tries to write.
fn exercise_reader(dir: &Path, model: &LogModel, context: &str) -> Wal {
    let mut reader = Wal::open_read_only(dir).unwrap_or_else(|e| panic!("{context}: open: {e}"));
    assert_sees(&mut reader, model, context);
    let mut rng = Rng::new(model.next_lsn());
    for _ in 0..20 {
        let lsn = rng.between(model.first_lsn, model.next_lsn() - 1);
        let mut count = 0;
        for item in reader.iter_from(Lsn(lsn)).expect("iter_from") {
            item.expect("iterate");
            count += 1;
        }
        assert_eq!(count, model.next_lsn() - lsn, "{context}: iter_from({lsn})");
    }
    let report = reader.verify().expect("verify");
    assert_eq!(
        report.records,
        model.next_lsn() - model.first_lsn,
        "{context}: verify"
    );
    reader.refresh().expect("refresh");
    assert_refuses_writes(&mut reader, context);
    reader
}

#[test]
fn a_reader_writes_nothing() {
    let seed = wal_support::seed(0x4417E);
    let dir = temp_dir();
    let mut writer = open_writer(dir.path());
    let mut model = LogModel::new();
    append(&mut writer, &mut model, seed, 120);

    // Beside an idle writer.
    let before = snapshot_dir(dir.path());
    let reader = exercise_reader(dir.path(), &model, "beside the writer");
    reader.close().expect("close of a reader is a no-op");
    assert!(
        snapshot_dir(dir.path()) == before,
        "a reader beside the writer changed files"
    );
    assert!(
        matches!(writer.refresh(), Err(e) if matches!(e.as_log(), Some(segwal::Error::ReadOnly))),
        "refresh of a writable log"
    );

    // After the writer closed.
    drop(writer);
    let before = snapshot_dir(dir.path());
    drop(exercise_reader(
        dir.path(),
        &model,
        "after the writer closed",
    ));
    assert!(
        snapshot_dir(dir.path()) == before,
        "a reader of a closed log changed files"
    );
}

#[test]
fn a_reader_leaves_a_crashed_directory_for_the_writer_to_repair() {
    let seed = wal_support::seed(0xC4A5);
    let source = temp_dir();
    let mut writer = open_writer(source.path());
    let mut model = LogModel::new();
    append(&mut writer, &mut model, seed, 250);
    // An interrupted truncation: the cut is durable, the segments it cut
    // off are still there.
    let uncut = snapshot_segments(source.path());
    let keep = writer.segments()[1].header.base_lsn + 3;
    writer.truncate_after(Lsn(keep)).expect("truncate_after");
    model.truncate_after(keep);
    append(&mut writer, &mut model, seed, 4);
    let dir = temp_dir();
    copy_segments(source.path(), dir.path());
    let newest = *writer.segments().last().expect("a segment");
    drop(writer);
    let mut cut_off = uncut;
    cut_off.retain(|name, _| !dir.path().join(name).exists());
    assert!(cut_off.len() >= 2, "the truncation cut segments off");
    restore(&cut_off, dir.path());
    // A torn tail after the newest segment's last record.
    let lens =
        (newest.header.base_lsn..model.next_lsn()).map(|lsn| model.get(lsn).expect("held").len());
    let end = wal_support::records_end(&newest, lens);
    write_at(
        &dir.path().join(segment_file_name(newest.header.sequence)),
        end,
        &[0xA5; 100],
    );
    // An allocation cut short and a stale prepared segment.
    let blank = vec![0u8; usize::try_from(SEGMENT_BYTES).expect("fits")];
    fs::write(
        dir.path()
            .join(segment_file_name(newest.header.sequence + 1)),
        &blank,
    )
    .expect("write");
    let prepared = format!("{}.prepared", segment_file_name(newest.header.sequence + 2));
    fs::write(dir.path().join(prepared), &blank).expect("write");

    let before = snapshot_dir(dir.path());
    let mut reader = Wal::open_read_only(dir.path()).expect("read-only open of a crashed log");
    match reader.tail_state() {
        WalTailState::TruncatedAt {
            segment, offset, ..
        } => {
            assert_eq!(
                (segment, offset),
                (newest.header.sequence, end),
                "where the torn tail is"
            );
        }
        WalTailState::Clean => panic!("a torn tail reported clean"),
    }
    assert_sees(&mut reader, &model, "read-only over a crashed log");
    assert_refuses_writes(&mut reader, "read-only over a crashed log");
    drop(reader);
    assert!(
        snapshot_dir(dir.path()) == before,
        "a reader repaired or removed files"
    );

    // The writer repairs all of it.
    let mut writer = open_writer(dir.path());
    assert_sees(&mut writer, &model, "the writer after the reader");
    let files = snapshot_dir(dir.path());
    let left: Vec<&String> = files.keys().filter(|name| *name != "LOCK").collect();
    assert_eq!(
        left.len(),
        writer.segment_count(),
        "leftovers removed: {left:?}"
    );
    let bytes = &files[&segment_file_name(newest.header.sequence)];
    let end = usize::try_from(end).expect("fits");
    assert!(
        bytes[end..end + 100].iter().all(|&b| b == 0),
        "the torn tail was zeroed"
    );
}

#[test]
fn a_closed_logs_segment_read_alone_ends_before_its_clean_close_marker() {
    let seed = wal_support::seed(0x5E6_0001);
    let dir = TempDir::new().expect("temp dir");
    let mut wal = open_writer(dir.path());
    for lsn in 1..=20 {
        wal.append(&entry(seed, lsn)).expect("append");
    }
    wal.close().expect("close");
    let segment = fs::read_dir(dir.path())
        .expect("list")
        .map(|entry| entry.expect("entry").path())
        .find(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .expect("one segment");
    let mut reader = segwal_std::Reader::open(&segment, None).expect("open the segment");
    let start = reader.records_start();
    let records: Vec<Vec<u8>> = reader
        .iter_from(start)
        .map(|item| item.map(|(_, payload)| payload))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("seed {seed:#x}: the marker read as a record: {e}"));
    let expected: Vec<Vec<u8>> = (1..=20).map(|lsn| entry(seed, lsn)).collect();
    assert_eq!(records, expected, "seed {seed:#x}");
}
