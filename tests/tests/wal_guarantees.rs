//! Every row of walogs 0.1.0's "Guarantees" table, and the two things its
//! "What it does NOT do" list names that segwal does, each as a test
//! against `segwal_std::Wal` (durability against a power cut on the core
//! log over `RamStore`, which can lose unsynced bytes as a disk would).
//!
//! - Durable on `Ok`: after every append or batch that returned `Ok`, a
//!   power cut that keeps only synced bytes loses nothing (RAM); and the
//!   record is in the segment files when `append` returns (a copy of the
//!   directory taken then opens with it).
//! - At most the entry in flight is lost: every prefix of the bytes one
//!   append writes, laid over the files as they were before it (in the
//!   middle of a segment, and in the segment a rotation starts: its header
//!   byte by byte, then its first record), reopens to the log before the
//!   append, or after it when every byte landed; and the files a rotation
//!   cut short by a crash leaves (empty, shorter than a header, blank) are
//!   discarded.
//! - Dense LSNs: `1, 2, 3, ...` across rotations, batches and reopens.
//! - No buried garbage: garbage after the newest segment's last record
//!   (after a crash, over a clean-close marker, after one) is reported as
//!   `TruncatedAt`, zeroed before any new write, and never seen again.
//! - Segment integrity: a missing middle segment, a duplicated or renamed
//!   segment file, and base LSNs that do not grow along the chain fail
//!   open, deleting nothing; a sealed segment missing records fails a full
//!   open and every read of the damage.
//! - Locking (walogs has none): a second writer, in this process or in a
//!   child process, is refused with `Locked` naming the holder's pid, while
//!   readers still open; the lock dies with its process.
//! - Seek by LSN (walogs has none): `read(lsn)` and `iter_from(lsn)` land
//!   on the right record in any segment, before and after a checkpoint.
//!
//! One printed seed drives payloads and garbage.

use segwal_tests::wal_support;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};

use segwal::{ChainDefect, Lsn, OpenVerification, SegmentConfig, SegmentIdentity, WalTailState};
use segwal_ram::{RamStore, Survivors};
use segwal_std::{Error, FileDevice, Wal, WalOptions};
use tempfile::TempDir;
use wal_support::{
    LogModel, Rng, contains, copy_segments, open_ram, payload, payload_len, payload_with_len,
    ram_config, ram_contents, records_end, restore, segment_file_name, segment_files,
    snapshot_segments, std_contents, std_options, write_at,
};

const SEGMENT_BYTES: u64 = 64 * 1024;

/// Held from spawning a child process until the child has told us it runs,
/// and while this process opens a log: from fork until a moment after exec
/// the child holds copies of every descriptor, `LOCK`s included, and with
/// them their `flock`s, so a reopen racing a spawn could see `Locked`.
static FORK_GUARD: Mutex<()> = Mutex::new(());

fn fork_guard() -> MutexGuard<'static, ()> {
    FORK_GUARD
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
}

fn open(dir: &Path) -> segwal_std::Result<Wal> {
    let _guard = fork_guard();
    Wal::open_with(dir, &options())
}

fn open_ok(dir: &Path, context: &str) -> Wal {
    open(dir).unwrap_or_else(|e| panic!("{context}: open {}: {e}", dir.display()))
}

fn options() -> WalOptions {
    std_options(SEGMENT_BYTES)
}

/// Payloads of about a kilobyte: a 64 KiB segment holds a few dozen.
fn entry(seed: u64, lsn: u64) -> Vec<u8> {
    payload_with_len(seed, lsn, 900 + payload_len(seed, lsn))
}

fn temp_dir() -> TempDir {
    tempfile::tempdir().expect("temporary directory")
}

/// Appends entries until the log has `segments` segments and `extra`
/// records in the newest, checking each LSN against the model.
fn fill(wal: &mut Wal, model: &mut LogModel, seed: u64, segments: usize, extra: u64) {
    // Bounded: each segment holds at most 64 KiB / 916 bytes of entries.
    for _ in 0..segments as u64 * SEGMENT_BYTES / 900 + extra + 1 {
        let newest = wal.segments().last().expect("a segment").header.base_lsn;
        if wal.segment_count() >= segments && model.next_lsn() - newest >= extra {
            return;
        }
        let bytes = entry(seed, model.next_lsn());
        let lsn = wal.append(&bytes).expect("append");
        assert_eq!(lsn.0, model.append(bytes), "LSN handed out");
    }
    panic!("fill: {} segments never reached", segments);
}

fn assert_contents(wal: &mut Wal, model: &LogModel, context: &str) {
    std_contents(wal)
        .unwrap_or_else(|e| panic!("{context}: read back: {e}"))
        .assert_matches(&model.contents(), context);
}

/// A copy of `dir`'s segment files in a new directory, as a power cut that
/// kept the page cache would leave them (no clean-close marker).
fn crash_copy(dir: &Path) -> TempDir {
    let copy = temp_dir();
    copy_segments(dir, copy.path());
    copy
}

// ---------------------------------------------------------------------
// Durable on Ok
// ---------------------------------------------------------------------

#[test]
fn every_acknowledged_append_survives_a_power_cut_right_after_it() {
    let seed = wal_support::seed(0x0D04_AB1E);
    let mut wal = open_ram(RamStore::new(seed), ram_config(4096)).expect("open");
    let mut model = LogModel::new();
    for step in 0..120u64 {
        let context = format!("seed {seed:#x} step {step}");
        if step % 5 == 4 {
            let batch: Vec<Vec<u8>> = (0..3).map(|i| payload(seed, step * 8 + i)).collect();
            let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            let range = wal.append_batch(&refs).expect("batch");
            assert_eq!(range.start.0, model.next_lsn(), "{context}");
            batch.into_iter().for_each(|bytes| {
                model.append(bytes);
            });
            assert_eq!(range.end.0, model.next_lsn(), "{context}");
        } else {
            let bytes = payload(seed, step * 8);
            let lsn = wal.append(&bytes).expect("append");
            assert_eq!(lsn.0, model.append(bytes), "{context}");
        }
        // Power cut now: only what was synced survives.
        let crashed = wal.store_mut().reboot(Survivors::Durable);
        let mut after = open_ram(crashed, ram_config(4096))
            .unwrap_or_else(|e| panic!("{context}: reopen: {e}"));
        ram_contents(&mut after)
            .unwrap_or_else(|e| panic!("{context}: read back: {e}"))
            .assert_matches(&model.contents(), &context);
    }
    assert!(
        wal.segment_count() >= 4,
        "rotated: {} segments",
        wal.segment_count()
    );
}

#[test]
fn an_acknowledged_append_is_in_the_segment_files_when_append_returns() {
    let seed = wal_support::seed(0xF11E5);
    let dir = temp_dir();
    let mut wal = open_ok(dir.path(), "new log");
    let mut model = LogModel::new();
    for step in 0..160u64 {
        let context = format!("seed {seed:#x} append {step}");
        let bytes = entry(seed, model.next_lsn());
        let lsn = wal.append(&bytes).expect("append");
        assert_eq!(lsn.0, model.append(bytes), "{context}");
        // Every fourth step, to keep the copying quadratic cost small.
        if step % 4 == 3 {
            let copy = crash_copy(dir.path());
            let mut after = open_ok(copy.path(), &context);
            assert_contents(&mut after, &model, &context);
        }
    }
    assert!(
        wal.segment_count() >= 3,
        "rotated: {} segments",
        wal.segment_count()
    );
}

// ---------------------------------------------------------------------
// At most the entry in flight is lost
// ---------------------------------------------------------------------

/// The bytes of `dir`'s segments as `image` says, in a new directory.
fn materialize(image: &BTreeMap<String, Vec<u8>>) -> TempDir {
    let dir = temp_dir();
    restore(image, dir.path());
    dir
}

/// Opens a crash image and checks it holds `expected` (and reports a torn
/// tail at `torn_at` when one is given), then that an append after
/// recovery gets the next LSN and survives a reopen.
fn check_crash_image(
    image: &BTreeMap<String, Vec<u8>>,
    expected: &LogModel,
    torn_at: Option<(u64, u64)>,
    seed: u64,
    context: &str,
) {
    let dir = materialize(image);
    let mut wal = open_ok(dir.path(), context);
    assert_contents(&mut wal, expected, context);
    match (torn_at, wal.tail_state()) {
        (None, _) => {}
        (
            Some((segment, offset)),
            WalTailState::TruncatedAt {
                segment: s,
                offset: o,
                ..
            },
        ) => {
            assert_eq!(
                (s, o),
                (segment, offset),
                "{context}: where the torn tail starts"
            );
        }
        (Some(_), WalTailState::Clean) => panic!("{context}: a torn tail reported as clean"),
    }
    let mut model = expected.clone();
    let bytes = entry(seed, u64::MAX - model.next_lsn());
    let lsn = wal
        .append(&bytes)
        .unwrap_or_else(|e| panic!("{context}: append after recovery: {e}"));
    assert_eq!(lsn.0, model.append(bytes), "{context}: LSN after recovery");
    drop(wal);
    let mut wal = open_ok(dir.path(), context);
    assert_contents(&mut wal, &model, &format!("{context}, reopened"));
}

/// A state the new segment file of a rotating append passes through: what
/// it is, the file's bytes, the log it must reopen to and where a torn tail
/// must be reported (segment, offset).
type NewFileState<'a> = (String, Vec<u8>, &'a LogModel, Option<(u64, u64)>);

/// The cut points tried in a region of `len` bytes: every byte of the
/// record header and a spread through the payload.
fn cut_points(len: usize) -> impl Iterator<Item = usize> {
    (0..len.min(24)).chain((24..len).step_by(61)).chain([len])
}

#[test]
fn a_crash_during_an_append_loses_at_most_that_entry() {
    let seed = wal_support::seed(0x70A2);
    let dir = temp_dir();
    let mut wal = open_ok(dir.path(), "new log");
    let mut model = LogModel::new();
    fill(&mut wal, &mut model, seed, 1, 10);

    // In the middle of a segment: one file changes, in one region.
    let before = snapshot_segments(dir.path());
    let newest = *wal.segments().last().expect("a segment");
    let record_start = records_end(
        &newest,
        (newest.header.base_lsn..model.next_lsn()).map(|lsn| model.get(lsn).expect("held").len()),
    );
    let old = model.clone();
    let bytes = entry(seed, model.next_lsn());
    wal.append(&bytes).expect("append in flight");
    model.append(bytes);
    let after = snapshot_segments(dir.path());
    let name = segment_file_name(newest.header.sequence);
    let (was, now) = (&before[&name], &after[&name]);
    let start = (0..now.len())
        .find(|&i| was[i] != now[i])
        .expect("a change");
    let end = (0..now.len())
        .rfind(|&i| was[i] != now[i])
        .expect("a change")
        + 1;
    assert!(
        start >= usize::try_from(record_start).expect("fits"),
        "the append wrote before its place"
    );
    for cut in cut_points(end - start) {
        let context = format!(
            "seed {seed:#x}: {cut} of {} bytes of the append landed",
            end - start
        );
        let mut image = before.clone();
        let file = image.get_mut(&name).expect("file");
        file[start..start + cut].copy_from_slice(&now[start..start + cut]);
        let (expected, torn_at) = match cut {
            0 => (&old, None),
            _ if cut == end - start => (&model, None),
            _ => (&old, Some((newest.header.sequence, record_start))),
        };
        check_crash_image(&image, expected, torn_at, seed, &context);
    }

    // The append that starts a segment: the new file, in every state its
    // creation, header and record pass through.
    let Rotation {
        before,
        name,
        new_file,
        header: newest,
        old: before_rotation_model,
    } = rotating_append(&mut wal, &mut model, dir.path(), seed);
    let new_file = &new_file;
    let records_start = usize::try_from(newest.records_start()).expect("fits");
    let record_end = (0..new_file.len())
        .rfind(|&i| new_file[i] != 0)
        .expect("a record")
        + 1;
    let blank = vec![0u8; new_file.len()];
    let mut states: Vec<NewFileState<'_>> = vec![
        (
            "the allocation done, no header".into(),
            blank.clone(),
            &before_rotation_model,
            None,
        ),
        (
            "the header written, no record".into(),
            [&new_file[..records_start], &blank[records_start..]].concat(),
            &before_rotation_model,
            None,
        ),
    ];
    for cut in cut_points(record_end - records_start).filter(|&c| c > 0) {
        let mut file = blank.clone();
        file[..records_start + cut].copy_from_slice(&new_file[..records_start + cut]);
        let whole = cut == record_end - records_start;
        let expected = if whole {
            &model
        } else {
            &before_rotation_model
        };
        let torn = (!whole).then_some((newest.sequence, u64::from(newest.records_start())));
        states.push((
            format!("{cut} bytes of the record landed"),
            file,
            expected,
            torn,
        ));
    }
    for (what, file, expected, torn_at) in states {
        let context = format!("seed {seed:#x}: rotation, {what}");
        let mut image = before.clone();
        image.insert(name.clone(), file);
        check_crash_image(&image, expected, torn_at, seed, &context);
    }
    // And the new file not there at all.
    check_crash_image(
        &before,
        &before_rotation_model,
        None,
        seed,
        "rotation, no new file",
    );
}

/// What one append that started a new segment changed.
struct Rotation {
    /// The segment files just before the append.
    before: BTreeMap<String, Vec<u8>>,
    /// The new segment's file name.
    name: String,
    /// The new segment's bytes just after the append.
    new_file: Vec<u8>,
    /// The new segment's header.
    header: segwal::SegmentHeader,
    /// The log before the append.
    old: LogModel,
}

/// Appends until an append starts a new segment, and returns what that
/// append changed; the sealed segments must not change.
fn rotating_append(wal: &mut Wal, model: &mut LogModel, dir: &Path, seed: u64) -> Rotation {
    let mut before = BTreeMap::new();
    let mut old = model.clone();
    // Bounded: a segment holds a few dozen entries.
    for _ in 0..SEGMENT_BYTES / 900 + 1 {
        let count = wal.segment_count();
        before = snapshot_segments(dir);
        old = model.clone();
        let bytes = entry(seed, model.next_lsn());
        wal.append(&bytes).expect("append");
        model.append(bytes);
        if wal.segment_count() > count {
            break;
        }
    }
    assert_eq!(model.next_lsn(), old.next_lsn() + 1, "one append");
    let header = wal.segments().last().expect("a segment").header;
    let name = segment_file_name(header.sequence);
    let mut after = snapshot_segments(dir);
    assert!(!before.contains_key(&name), "the append rotated");
    let new_file = after.remove(&name).expect("the new segment");
    assert!(
        after == before,
        "a rotating append changed the sealed segments"
    );
    Rotation {
        before,
        name,
        new_file,
        header,
        old,
    }
}

/// A power cut inside the write of a new segment's header: any prefix of
/// the header over the zeros the allocation left. The segment never held
/// a record, so the log must open as it was before the append.
#[test]
fn a_crash_inside_a_new_segment_header_loses_nothing() {
    let seed = wal_support::seed(0x004E_ADE4);
    let dir = temp_dir();
    let mut wal = open_ok(dir.path(), "new log");
    let mut model = LogModel::new();
    let rotation = rotating_append(&mut wal, &mut model, dir.path(), seed);
    drop(wal);
    let header_len = segwal::format::SEGMENT_HEADER_LEN;
    let mut failures = Vec::new();
    for cut in 1..header_len {
        let mut file = vec![0u8; rotation.new_file.len()];
        file[..cut].copy_from_slice(&rotation.new_file[..cut]);
        let mut image = rotation.before.clone();
        image.insert(rotation.name.clone(), file);
        let copy = materialize(&image);
        match open(copy.path()) {
            Ok(mut wal) => assert_contents(&mut wal, &rotation.old, &format!("{cut} header bytes")),
            Err(e) => failures.push(format!("{cut} of {header_len} header bytes landed: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "seed {seed:#x}:\n{}",
        failures.join("\n")
    );
}

/// Puts each leftover under the name of the segment after the newest of a
/// closed two-segment log and checks that open discards it, loses nothing
/// and goes on appending.
fn check_leftovers(leftovers: &[(&str, usize)], seed: u64) {
    let source = temp_dir();
    let mut wal = open_ok(source.path(), "new log");
    let mut model = LogModel::new();
    fill(&mut wal, &mut model, seed, 2, 3);
    let next_sequence = wal.segments().last().expect("a segment").header.sequence + 1;
    drop(wal);
    let image = snapshot_segments(source.path());
    for &(what, len_bytes) in leftovers {
        let context =
            format!("seed {seed:#x}: {what} ({len_bytes} zero bytes) as segment {next_sequence}");
        let dir = materialize(&image);
        let leftover = dir.path().join(segment_file_name(next_sequence));
        fs::write(&leftover, vec![0u8; len_bytes]).expect("write the leftover");
        let mut wal = open_ok(dir.path(), &context);
        assert_contents(&mut wal, &model, &context);
        assert!(
            !leftover.exists(),
            "{context}: the leftover was not removed"
        );
        let bytes = entry(seed, model.next_lsn());
        let mut expected = model.clone();
        assert_eq!(
            wal.append(&bytes).expect("append").0,
            expected.append(bytes),
            "{context}"
        );
        drop(wal);
        let mut wal = open_ok(dir.path(), &context);
        assert_contents(&mut wal, &expected, &format!("{context}, reopened"));
    }
}

/// What a rotation or truncation cut short can leave under the next
/// segment's name once `FileDevice::create` has sized the file: zeros,
/// some or all of them written.
#[test]
fn blank_segment_files_a_crash_cut_short_are_discarded_at_open() {
    let seed = wal_support::seed(0xC07);
    let segment = usize::try_from(SEGMENT_BYTES).expect("fits");
    check_leftovers(
        &[
            ("one block of a segment", 4096),
            ("a whole blank segment", segment),
            ("a blank file longer than a segment", 2 * segment),
        ],
        seed,
    );
}

/// What a crash (a killed process is enough) between `FileDevice::create`
/// making the file and sizing it leaves: an empty file, or one shorter
/// than a header where the file system cannot preallocate. `DirStore`
/// documents both as read "as an allocation cut short".
#[test]
fn short_segment_files_a_crash_cut_short_are_discarded_at_open() {
    let seed = wal_support::seed(0xC07);
    check_leftovers(
        &[("an empty file", 0), ("a file shorter than a header", 40)],
        seed,
    );
}

// ---------------------------------------------------------------------
// Dense LSNs
// ---------------------------------------------------------------------

#[test]
fn lsns_are_dense_across_segments_batches_and_reopens() {
    let seed = wal_support::seed(0xDE45E);
    let dir = temp_dir();
    let mut wal = open_ok(dir.path(), "new log");
    let mut model = LogModel::new();
    let mut rng = Rng::new(seed);
    for round in 0..3 {
        // Bounded: each pass adds at least one record.
        for _ in 0..300 {
            if wal.segment_count() >= 2 + 2 * round {
                break;
            }
            if rng.percent(30) {
                let count = rng.between(2, 6);
                let batch: Vec<Vec<u8>> = (0..count)
                    .map(|i| entry(seed, model.next_lsn() + i))
                    .collect();
                let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                let range = wal.append_batch(&refs).expect("batch");
                assert_eq!(range.start.0, model.next_lsn(), "batch start");
                batch.into_iter().for_each(|b| {
                    model.append(b);
                });
                assert_eq!(range.end.0, model.next_lsn(), "batch end");
            } else {
                let bytes = entry(seed, model.next_lsn());
                assert_eq!(wal.append(&bytes).expect("append").0, model.append(bytes));
            }
        }
        // Each segment starts where the one before it ends.
        let segments = wal.segments().to_vec();
        assert_eq!(segments[0].header.base_lsn, 1, "the log starts at LSN 1");
        for pair in segments.windows(2) {
            assert!(
                pair[0].header.base_lsn < pair[1].header.base_lsn,
                "bases grow"
            );
        }
        assert_contents(&mut wal, &model, &format!("round {round}"));
        // Alternately a clean reopen and one after a crash.
        if round % 2 == 0 {
            drop(wal);
            wal = open_ok(dir.path(), "clean reopen");
            assert_eq!(wal.tail_state(), WalTailState::Clean, "after a clean close");
        } else {
            let copy = crash_copy(dir.path());
            drop(wal);
            fs::remove_dir_all(dir.path()).expect("remove");
            fs::create_dir(dir.path()).expect("mkdir");
            copy_segments(copy.path(), dir.path());
            wal = open_ok(dir.path(), "reopen after a crash");
        }
        assert_eq!(
            wal.next_lsn().0,
            model.next_lsn(),
            "next LSN after reopen, round {round}"
        );
    }
    assert!(wal.segment_count() >= 6, "{} segments", wal.segment_count());
}

// ---------------------------------------------------------------------
// No buried garbage
// ---------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Garbage {
    /// After the last record of a log that crashed (no marker).
    AfterCrash,
    /// Over the clean-close marker.
    OverMarker,
    /// Right after the clean-close marker, in the same block.
    AfterMarker,
}

fn garbage_case(kind: Garbage, seed: u64) {
    let context = format!("seed {seed:#x}: garbage {kind:?}");
    let source = temp_dir();
    let mut wal = open_ok(source.path(), &context);
    let mut model = LogModel::new();
    fill(&mut wal, &mut model, seed, 2, 5);
    let newest = *wal.segments().last().expect("a segment");
    let end = records_end(
        &newest,
        (newest.header.base_lsn..model.next_lsn()).map(|lsn| model.get(lsn).expect("held").len()),
    );
    let dir = crash_copy(source.path());
    let marker_bytes =
        u64::from(segwal::recovery::marker_extent_bytes(8, false).expect("files get markers"));
    let garbage_at = match kind {
        Garbage::AfterCrash => end,
        Garbage::OverMarker | Garbage::AfterMarker => {
            drop(wal);
            // The clean close wrote its marker at `end`: use those files.
            fs::remove_dir_all(dir.path()).expect("remove");
            fs::create_dir(dir.path()).expect("mkdir");
            copy_segments(source.path(), dir.path());
            match kind {
                Garbage::OverMarker => end,
                _ => end + marker_bytes,
            }
        }
    };
    let mut garbage = vec![0u8; 200];
    Rng::new(seed ^ 0x6A4B).fill(&mut garbage);
    garbage
        .iter_mut()
        .filter(|b| **b == 0)
        .for_each(|b| *b = 0xA5);
    let path = dir.path().join(segment_file_name(newest.header.sequence));
    write_at(&path, garbage_at, &garbage);

    let mut wal = open_ok(dir.path(), &context);
    let garbage_end = garbage_at + garbage.len() as u64;
    match wal.tail_state() {
        WalTailState::TruncatedAt {
            segment,
            offset,
            bytes_discarded,
            records_discarded,
        } => {
            assert_eq!(segment, newest.header.sequence, "{context}: segment");
            assert!(
                (end..=garbage_at).contains(&offset),
                "{context}: cut at {offset}, records end at {end}, garbage at {garbage_at}"
            );
            assert!(
                offset + bytes_discarded >= garbage_end,
                "{context}: discarded too little"
            );
            assert_eq!(
                records_discarded, 0,
                "{context}: a torn tail drops no counted record"
            );
        }
        WalTailState::Clean => panic!("{context}: garbage reported as a clean tail"),
    }
    // Zeroed before any new write.
    let bytes = fs::read(&path).expect("read");
    let range =
        usize::try_from(garbage_at).expect("fits")..usize::try_from(garbage_end).expect("fits");
    assert!(
        bytes[range].iter().all(|&b| b == 0),
        "{context}: garbage left in place at open"
    );
    assert_contents(&mut wal, &model, &context);
    for _ in 0..5 {
        let bytes = entry(seed, model.next_lsn());
        assert_eq!(
            wal.append(&bytes).expect("append").0,
            model.append(bytes),
            "{context}"
        );
    }
    drop(wal);
    let mut wal = open_ok(dir.path(), &context);
    assert_eq!(
        wal.tail_state(),
        WalTailState::Clean,
        "{context}: after the appends"
    );
    assert_contents(
        &mut wal,
        &model,
        &format!("{context}, after appends and a reopen"),
    );
    drop(wal);
    for file in segment_files(dir.path()) {
        let bytes = fs::read(&file).expect("read");
        assert!(
            !garbage.windows(16).any(|window| contains(&bytes, window)),
            "{context}: garbage reappeared in {}",
            file.display()
        );
    }
}

#[test]
fn garbage_after_the_last_record_is_cut_before_any_new_write() {
    let seed = wal_support::seed(0x6A4B);
    for kind in [Garbage::AfterCrash, Garbage::OverMarker] {
        garbage_case(kind, seed);
    }
}

/// The scan that finds this garbage first walks over the valid clean-close
/// marker before it: new records must not follow that marker, which would
/// leave it between records where iteration cannot step over it.
#[test]
fn garbage_after_a_clean_close_marker_is_cut_and_the_log_stays_iterable() {
    let seed = wal_support::seed(0x6A4B);
    garbage_case(Garbage::AfterMarker, seed);
}

// ---------------------------------------------------------------------
// Segment integrity
// ---------------------------------------------------------------------

/// A closed log with at least four segments.
fn four_segments(seed: u64) -> (TempDir, LogModel, Vec<segwal::SegmentInfo>) {
    let dir = temp_dir();
    let mut wal = open_ok(dir.path(), "new log");
    let mut model = LogModel::new();
    fill(&mut wal, &mut model, seed, 4, 2);
    let segments = wal.segments().to_vec();
    drop(wal);
    (dir, model, segments)
}

/// Panics unless opening `dir`, for writing and read-only, fails with a
/// chain error naming `segment` for `defect`, changing no segment file.
fn assert_chain_error(dir: &Path, segment: u64, defect: ChainDefect, context: &str) {
    let before = snapshot_segments(dir);
    for read_only in [false, true] {
        let opened = if read_only {
            Wal::open_read_only(dir)
        } else {
            open(dir)
        };
        match opened {
            Err(Error::Log(segwal::Error::Chain { segment: s, reason })) => assert_eq!(
                (s, reason),
                (segment, defect),
                "{context} (read-only {read_only}): (segment, defect)"
            ),
            Err(other) => panic!("{context} (read-only {read_only}): wrong error {other}"),
            Ok(_) => panic!("{context} (read-only {read_only}): opened"),
        }
    }
    assert!(
        snapshot_segments(dir) == before,
        "{context}: a failed open changed segment files"
    );
}

#[test]
fn a_missing_middle_segment_fails_open_naming_it() {
    let seed = wal_support::seed(0x61A9);
    let (dir, _, segments) = four_segments(seed);
    let missing = segments[1].header.sequence;
    fs::remove_file(dir.path().join(segment_file_name(missing))).expect("delete");
    assert_chain_error(
        dir.path(),
        segments[2].header.sequence,
        ChainDefect::MissingPredecessor { missing },
        "missing middle segment",
    );
}

/// A copy of a segment under a name no segment has yet: two files holding
/// one sequence. Names are unique in a directory, so the copy's name is
/// never its header's sequence, and that is what open reports.
#[test]
fn a_duplicated_segment_file_fails_open() {
    let seed = wal_support::seed(0xD0B);
    let (dir, _, segments) = four_segments(seed);
    let newest = segments.last().expect("a segment").header.sequence;
    let copied = segments[1].header.sequence;
    fs::copy(
        dir.path().join(segment_file_name(copied)),
        dir.path().join(segment_file_name(newest + 5)),
    )
    .expect("copy");
    assert_chain_error(
        dir.path(),
        copied,
        ChainDefect::NameMismatch { id: newest + 5 },
        "duplicated segment",
    );
}

/// A segment file renamed to a sequence the log has not reached yet: the
/// log must not trust it, because the rotation that reaches that sequence
/// allocates the name, removing the file and the records in it.
#[test]
fn a_renamed_segment_file_fails_open() {
    let seed = wal_support::seed(0x4E4A);
    let (dir, model, segments) = four_segments(seed);
    let newest = segments.last().expect("a segment").header.sequence;
    let moved = segments[1].header.sequence;
    fs::rename(
        dir.path().join(segment_file_name(moved)),
        dir.path().join(segment_file_name(newest + 2)),
    )
    .expect("rename");
    let before = snapshot_segments(dir.path());
    match open(dir.path()) {
        Err(Error::Log(segwal::Error::Chain { .. })) => {}
        Err(other) => panic!("wrong error: {other}"),
        Ok(mut wal) => {
            // Show what trusting it costs: rotate past the name and read.
            let mut model = model;
            fill(&mut wal, &mut model, seed, segments.len() + 3, 1);
            let lost = std_contents(&mut wal).err().map(|e| e.to_string());
            panic!(
                "segment {moved} renamed as {} opened; after rotating past that name: {lost:?}",
                newest + 2
            );
        }
    }
    assert!(
        snapshot_segments(dir.path()) == before,
        "a failed open changed segment files"
    );
    assert_chain_error(
        dir.path(),
        moved,
        ChainDefect::NameMismatch { id: newest + 2 },
        "renamed segment",
    );
}

#[test]
fn base_lsns_that_do_not_grow_fail_open() {
    let seed = wal_support::seed(0xBA5E);
    let (dir, _, segments) = four_segments(seed);
    let newest = segments.last().expect("a segment").header;
    // A well-formed segment after the newest whose base LSN goes back.
    let path = dir.path().join(segment_file_name(newest.sequence + 1));
    let device = FileDevice::create(&path, SEGMENT_BYTES).expect("create");
    let identity = SegmentIdentity {
        sequence: newest.sequence + 1,
        base_lsn: newest.base_lsn - 1,
        salt: seed,
        prev_sequence: newest.sequence,
    };
    let config = SegmentConfig::new(u32::try_from(SEGMENT_BYTES).expect("fits"));
    segwal::SegmentWriter::create(device, 0, &config, identity, &[]).expect("forge");
    assert_chain_error(
        dir.path(),
        newest.sequence + 1,
        ChainDefect::LsnNotIncreasing,
        "base LSN going back",
    );
}

/// A closed four-segment log whose second segment has its last record
/// zeroed; returns the segment and the zeroed record's LSN.
fn zero_last_record_of_second_segment(seed: u64) -> (TempDir, LogModel, segwal::SegmentInfo, u64) {
    let (dir, model, segments) = four_segments(seed);
    let sealed = segments[1];
    let last = segments[2].header.base_lsn - 1;
    let lens = (sealed.header.base_lsn..last).map(|lsn| model.get(lsn).expect("held").len());
    let start = records_end(&sealed, lens);
    let len = wal_support::extent(model.get(last).expect("held").len());
    let path = dir.path().join(segment_file_name(sealed.header.sequence));
    write_at(
        &path,
        start,
        &vec![0u8; usize::try_from(len).expect("fits")],
    );
    (dir, model, sealed, last)
}

#[test]
fn a_sealed_segment_missing_records_fails_a_full_open_and_reads_of_the_damage() {
    let seed = wal_support::seed(0x5EA1);
    let (dir, _, sealed, last) = zero_last_record_of_second_segment(seed);
    let full = WalOptions {
        verification: OpenVerification::Full,
        ..options()
    };
    let before = snapshot_segments(dir.path());
    let opened = {
        let _guard = fork_guard();
        Wal::open_with(dir.path(), &full)
    };
    match opened {
        Err(Error::Log(segwal::Error::Chain {
            segment,
            reason: ChainDefect::MissingRecords { .. },
        }))
        | Err(Error::Log(segwal::Error::Corrupt { segment, .. })) => {
            assert_eq!(segment, sealed.header.sequence, "names the damaged segment");
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a full open accepted a segment missing its last record"),
    }
    assert!(
        snapshot_segments(dir.path()) == before,
        "a failed open changed segment files"
    );
    // The default open reads only the newest segment: a read of the damage
    // fails, never returns other bytes, and verify reports it.
    let mut wal = open_ok(dir.path(), "tail open");
    assert!(
        wal.read(Lsn(last)).is_err(),
        "read of the zeroed record succeeded"
    );
    let report = wal.verify().expect("verify");
    assert_eq!(report.problem_count, 1, "{report:?}");
    assert_eq!(report.problems[0].segment, sealed.header.sequence);
    assert_eq!(report.problems[0].lsn, last);
}

/// Damage to one record of a sealed segment costs that record (and, read
/// sequentially, what follows), not the intact records before it.
#[test]
fn records_before_damage_in_a_sealed_segment_stay_readable() {
    let seed = wal_support::seed(0x5EA1);
    let (dir, model, sealed, last) = zero_last_record_of_second_segment(seed);
    let mut wal = open_ok(dir.path(), "tail open");
    for lsn in sealed.header.base_lsn..last {
        match wal.read(Lsn(lsn)) {
            Ok(bytes) => assert!(
                bytes == model.get(lsn).expect("held"),
                "read({lsn}) returned other bytes"
            ),
            Err(e) => panic!("read({lsn}), before the damage at {last}: {e}"),
        }
    }
    let mut expected = model.first_lsn;
    for item in wal.iter() {
        match item {
            Ok((lsn, bytes)) => {
                assert_eq!(lsn.0, expected, "iteration order");
                assert!(
                    bytes == model.get(lsn.0).expect("held"),
                    "iter at {lsn} returned other bytes"
                );
                expected += 1;
            }
            Err(e) => {
                assert_eq!(
                    expected, last,
                    "iteration stopped at {expected}, before the damage at {last}: {e}"
                );
                break;
            }
        }
    }
    assert_eq!(expected, last, "iteration went past the damage");
}

// ---------------------------------------------------------------------
// Locking (walogs: none)
// ---------------------------------------------------------------------

#[test]
fn a_second_writer_in_this_process_is_refused() {
    let seed = wal_support::seed(0x10C);
    let dir = temp_dir();
    let mut first = open_ok(dir.path(), "first writer");
    first.append(&payload(seed, 1)).expect("append");
    match open(dir.path()) {
        Err(Error::Locked { holder_pid, path }) => {
            assert_eq!(holder_pid, Some(std::process::id()), "names this process");
            assert_eq!(path, dir.path());
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("two writers on one directory"),
    }
    // Readers take no lock.
    let mut reader = Wal::open_read_only(dir.path()).expect("read-only open");
    assert_eq!(reader.read(Lsn(1)).expect("read"), payload(seed, 1));
    drop(first);
    let mut second = open_ok(dir.path(), "writer after the first closed");
    assert_eq!(second.append(&payload(seed, 2)).expect("append").0, 2);
}

/// The environment variable naming the directory the child locks.
const CHILD_DIR_VAR: &str = "SEGWAL_WAL_GUARANTEES_LOCK_CHILD";
/// What the child prints once it holds the lock.
const CHILD_READY: &str = "SEGWAL-WAL-LOCKED";

/// Kills the child when the test ends, however it ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_writer_in_another_process_is_named_and_its_lock_dies_with_it() {
    let seed = wal_support::seed(0xC41D);
    let dir = temp_dir();
    // Held until the child says it holds the lock: `spawn` returns once the
    // child execs, but the kernel closes the child's copies of this
    // process's descriptors (other tests' `LOCK`s among them) a moment
    // later. A child running its test has closed them all.
    let guard = fork_guard();
    let mut child = {
        let child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "child_holds_the_lock_until_killed",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_VAR, dir.path())
            .env("SEGWAL_TEST_SEED", seed.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the lock holder");
        ChildGuard(child)
    };
    let child_pid = child.0.id();
    let mut stdout = BufReader::new(child.0.stdout.take().expect("stdout"));
    let mut line = String::new();
    // The harness prints a bounded handful of lines first; EOF ends it too.
    while !line.contains(CHILD_READY) {
        line.clear();
        let read_bytes = stdout.read_line(&mut line).expect("read the child");
        assert!(read_bytes > 0, "the child exited without locking");
    }
    drop(guard);
    match open(dir.path()) {
        Err(Error::Locked { holder_pid, .. }) => assert_eq!(holder_pid, Some(child_pid)),
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("opened a log another process writes"),
    }
    // A reader sees what the child appended.
    let mut reader = Wal::open_read_only(dir.path()).expect("read-only open");
    assert_eq!(reader.read(Lsn(1)).expect("read"), payload(seed, 1));
    drop(reader);
    // Killed, not closed: the lock goes with the process.
    child.0.kill().expect("kill the child");
    child.0.wait().expect("wait for the child");
    let mut wal = open_ok(dir.path(), "after the holder was killed");
    assert_eq!(wal.next_lsn().0, 2, "the child's record is there");
    assert_eq!(wal.read(Lsn(1)).expect("read"), payload(seed, 1));
}

/// The child of [`a_writer_in_another_process_is_named_and_its_lock_dies_with_it`]:
/// opens the log in the directory the environment names, appends one
/// record, says so, and waits on stdin until it is killed. Does nothing
/// when run on its own.
#[test]
#[ignore = "run as a child process by a_writer_in_another_process_is_named_and_its_lock_dies_with_it"]
fn child_holds_the_lock_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_DIR_VAR) else {
        return;
    };
    let seed = wal_support::seed(0);
    let mut wal = Wal::open_with(Path::new(&dir), &options()).expect("child: open");
    wal.append(&payload(seed, 1)).expect("child: append");
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{CHILD_READY}").expect("write");
    stdout.flush().expect("flush");
    let mut rest = Vec::new();
    std::io::stdin().read_to_end(&mut rest).expect("read stdin");
    drop(wal);
}

// ---------------------------------------------------------------------
// Seek by LSN (walogs: none)
// ---------------------------------------------------------------------

fn assert_seeks(wal: &mut Wal, model: &LogModel, rng: &mut Rng, context: &str) {
    let (first, next) = (model.first_lsn, model.next_lsn());
    for lsn in first..next {
        assert_eq!(
            wal.read(Lsn(lsn)).expect("read"),
            model.get(lsn).expect("held"),
            "{context}: read({lsn})"
        );
    }
    let mut starts: Vec<u64> = (0..20).map(|_| rng.between(first, next)).collect();
    starts.extend([first, next]);
    starts.extend(wal.segments().iter().map(|s| s.header.base_lsn));
    for start in starts {
        let mut expected = start;
        for item in wal
            .iter_from(Lsn(start))
            .unwrap_or_else(|e| panic!("{context}: iter_from({start}): {e}"))
        {
            let (lsn, bytes) = item.expect("iterate");
            assert_eq!(lsn.0, expected, "{context}: iter_from({start})");
            assert!(
                bytes == model.get(lsn.0).expect("held"),
                "{context}: iter_from({start}) at {lsn}"
            );
            expected += 1;
        }
        assert_eq!(
            expected, next,
            "{context}: iter_from({start}) ends at the log's end"
        );
    }
    let out_of_range = |r: segwal_std::Result<Vec<u8>>| {
        matches!(r, Err(Error::Log(segwal::Error::LsnOutOfRange { .. })))
    };
    assert!(
        out_of_range(wal.read(Lsn(next))),
        "{context}: read(next_lsn)"
    );
    assert!(
        out_of_range(wal.read(Lsn(first - 1))),
        "{context}: read(first_lsn - 1)"
    );
    assert!(
        matches!(
            wal.iter_from(Lsn(next + 1)),
            Err(Error::Log(segwal::Error::LsnOutOfRange { .. }))
        ),
        "{context}: iter_from past the end"
    );
    if first > 1 {
        assert!(
            matches!(
                wal.iter_from(Lsn(first - 1)),
                Err(Error::Log(segwal::Error::LsnOutOfRange { .. }))
            ),
            "{context}: iter_from a checkpointed LSN"
        );
    }
}

#[test]
fn read_and_iter_from_seek_to_any_lsn() {
    let seed = wal_support::seed(0x5EE);
    let mut rng = Rng::new(seed);
    let dir = temp_dir();
    let mut wal = open_ok(dir.path(), "new log");
    let mut model = LogModel::new();
    fill(&mut wal, &mut model, seed, 5, 3);
    assert_seeks(&mut wal, &model, &mut rng, "five segments");
    let cut = wal.segments()[2].header.base_lsn + 1;
    assert!(
        wal.checkpoint(Lsn(cut)).expect("checkpoint") >= 2,
        "checkpoint removed segments"
    );
    model.drop_before(wal.first_lsn().0);
    assert_seeks(&mut wal, &model, &mut rng, "after a checkpoint");
    drop(wal);
    let mut wal = open_ok(dir.path(), "reopen");
    assert_seeks(
        &mut wal,
        &model,
        &mut rng,
        "after a checkpoint and a reopen",
    );
}
