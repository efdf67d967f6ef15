//! LSNs survive everything the log does: no LSN is lost, reused or handed
//! out out of order across checkpoints, truncations and reopens, and a
//! request the log refuses changes nothing.
//!
//! Random histories (each from the printed seed and its index) of appends,
//! batches, syncs, `checkpoint`, `truncate_after`, drops, explicit closes
//! and crash reopens (the segment files copied while the writer runs) run on
//! `segwal_std::Wal` with small segments, against a `LogModel` (a
//! `VecDeque` of payloads and its first LSN). After every operation the
//! log's first and next LSN must equal the model's; every append must get
//! the model's next LSN; a checkpoint may only move the first LSN forward,
//! to a segment base no higher than the checkpointed LSN + 1, and must
//! leave no sealed segment whose records are all at or below it; every
//! reopen must keep both LSNs; and the records must read back, by
//! iteration and by LSN, as the model holds them. A variant reopens with
//! full verification.
//!
//! Refused requests: checkpoint and truncate_after with an LSN outside the
//! log, reads of checkpointed or unwritten LSNs, and entries or batches
//! larger than a segment (or than `record_len_max`) fail with
//! `LsnOutOfRange` or `RecordTooLarge`, leave every segment file byte for
//! byte as it was and the log writable at the same next LSN. A path that is
//! a file is `NotADirectory`; a directory the writer cannot write in is an
//! `Io` error naming it (skipped when running as root, which ignores
//! permissions).

use segwal_tests::wal_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use segwal::{Durability, Lsn, OpenVerification, WalTailState};
use segwal_std::{Error, Wal, WalOptions};
use tempfile::TempDir;
use wal_support::{
    LogModel, Rng, copy_segments, payload, payload_with_len, snapshot_segments, std_contents,
    std_options,
};

const SEGMENT_BYTES: u64 = 32 * 1024;
const HISTORIES: u64 = 12;
const STEPS_PER_HISTORY: u64 = 120;

fn temp_dir() -> TempDir {
    tempfile::tempdir().expect("temporary directory")
}

fn assert_contents(wal: &mut Wal, model: &LogModel, context: &str) {
    std_contents(wal)
        .unwrap_or_else(|e| panic!("{context}: read back: {e}"))
        .assert_matches(&model.contents(), context);
}

fn assert_lsns(wal: &Wal, model: &LogModel, context: &str) {
    assert_eq!(
        (wal.first_lsn().0, wal.next_lsn().0),
        (model.first_lsn, model.next_lsn()),
        "{context}: (first_lsn, next_lsn)"
    );
}

/// How a history reopens its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reopen {
    /// Drop (which closes cleanly) and open.
    Drop,
    /// `close()` and open.
    Close,
    /// Copy the segment files while the writer runs, as a crash that kept
    /// the page cache leaves them, and open the copy.
    Crash,
    /// Drop and open with `OpenVerification::Full`.
    Full,
}

/// A history's log: its directory (replaced by a crash reopen) and options.
struct Subject {
    dir: TempDir,
    options: WalOptions,
    wal: Option<Wal>,
}

impl Subject {
    fn wal(&mut self) -> &mut Wal {
        self.wal.as_mut().expect("open")
    }

    fn reopen(&mut self, how: Reopen, context: &str) {
        let wal = self.wal.take().expect("open");
        let mut options = self.options.clone();
        match how {
            Reopen::Drop => drop(wal),
            Reopen::Close => wal
                .close()
                .unwrap_or_else(|e| panic!("{context}: close: {e}")),
            Reopen::Crash => {
                let copy = temp_dir();
                copy_segments(self.dir.path(), copy.path());
                drop(wal);
                self.dir = copy;
            }
            Reopen::Full => {
                drop(wal);
                options.verification = OpenVerification::Full;
            }
        }
        let wal = Wal::open_with(self.dir.path(), &options)
            .unwrap_or_else(|e| panic!("{context}: reopen ({how:?}): {e}"));
        if how != Reopen::Crash {
            assert_eq!(
                wal.tail_state(),
                WalTailState::Clean,
                "{context}: after a clean close"
            );
        }
        self.wal = Some(wal);
    }
}

/// An LSN in `low..=high`, half the time a segment's base or the LSN just
/// before it (where off-by-ones live).
fn pick_lsn(rng: &mut Rng, wal: &Wal, low: u64, high: u64) -> u64 {
    if rng.percent(50) {
        let segments = wal.segments();
        let index = usize::try_from(rng.between(0, segments.len() as u64 - 1)).expect("small");
        let base = segments[index].header.base_lsn;
        let lsn = if rng.percent(50) {
            base
        } else {
            base.saturating_sub(1)
        };
        lsn.clamp(low, high)
    } else {
        rng.between(low, high)
    }
}

fn checkpoint_step(subject: &mut Subject, model: &mut LogModel, rng: &mut Rng, context: &str) {
    if model.next_lsn() == model.first_lsn {
        return;
    }
    let wal = subject.wal();
    let lsn = pick_lsn(rng, wal, model.first_lsn, model.next_lsn() - 1);
    let segments_before = wal.segment_count();
    let removed = wal
        .checkpoint(Lsn(lsn))
        .unwrap_or_else(|e| panic!("{context}: checkpoint({lsn}): {e}"));
    let first = wal.first_lsn().0;
    assert_eq!(
        wal.segment_count() + removed,
        segments_before,
        "{context}: removed count"
    );
    assert!(
        (model.first_lsn..=lsn + 1).contains(&first),
        "{context}: checkpoint({lsn}) moved the first LSN from {} to {first}",
        model.first_lsn
    );
    assert_eq!(
        wal.segments()[0].header.base_lsn,
        first,
        "{context}: first is a segment base"
    );
    if let Some(second) = wal.segments().get(1) {
        assert!(
            second.header.base_lsn > lsn + 1,
            "{context}: checkpoint({lsn}) kept a sealed segment with only records <= {lsn}"
        );
    }
    model.drop_before(first);
}

fn append_step(subject: &mut Subject, model: &mut LogModel, rng: &mut Rng, tag: u64, batch: bool) {
    let count = if batch { rng.between(2, 6) } else { 1 };
    let payloads: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            let len = usize::try_from(rng.between(0, 2000)).expect("small");
            payload_with_len(tag, i, len)
        })
        .collect();
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    let range = subject.wal().append_batch(&refs).expect("append");
    assert_eq!(range.start.0, model.next_lsn(), "the next LSN handed out");
    for bytes in payloads {
        model.append(bytes);
    }
    assert_eq!(range.end.0, model.next_lsn(), "one LSN per record");
}

fn run_history(seed: u64, history: u64, full_reopens: bool) {
    let mut rng = Rng::new(seed ^ history.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let durability = if rng.percent(50) {
        Durability::Sync
    } else {
        Durability::Manual
    };
    let options = WalOptions {
        durability,
        ..std_options(SEGMENT_BYTES)
    };
    let dir = temp_dir();
    let wal = Wal::open_with(dir.path(), &options).expect("open a new log");
    let mut subject = Subject {
        dir,
        options,
        wal: Some(wal),
    };
    let mut model = LogModel::new();
    for step in 0..STEPS_PER_HISTORY {
        let context = format!("seed {seed:#x} history {history} ({durability:?}) step {step}");
        let tag = seed ^ (history << 40) ^ (step << 8);
        match rng.between(0, 99) {
            0..=39 => append_step(&mut subject, &mut model, &mut rng, tag, false),
            40..=51 => append_step(&mut subject, &mut model, &mut rng, tag, true),
            52..=61 => checkpoint_step(&mut subject, &mut model, &mut rng, &context),
            62..=71 => {
                let (first, next) = (model.first_lsn, model.next_lsn());
                let lsn = pick_lsn(&mut rng, subject.wal(), first - 1, next - 1);
                subject
                    .wal()
                    .truncate_after(Lsn(lsn))
                    .unwrap_or_else(|e| panic!("{context}: truncate_after({lsn}): {e}"));
                model.truncate_after(lsn);
            }
            72..=77 => subject.reopen(Reopen::Drop, &context),
            78..=81 => subject.reopen(Reopen::Close, &context),
            82..=87 => subject.reopen(Reopen::Crash, &context),
            88..=91 => subject
                .wal()
                .sync()
                .unwrap_or_else(|e| panic!("{context}: sync: {e}")),
            _ if full_reopens => subject.reopen(Reopen::Full, &context),
            _ => subject.reopen(Reopen::Drop, &context),
        }
        assert_lsns(subject.wal(), &model, &context);
        if step % 10 == 9 {
            assert_contents(subject.wal(), &model, &context);
        }
    }
    let context = format!("seed {seed:#x} history {history}: at the end");
    assert_contents(subject.wal(), &model, &context);
    subject.reopen(Reopen::Drop, &context);
    assert_lsns(subject.wal(), &model, &context);
    assert_contents(subject.wal(), &model, &context);
    // Rotations and truncations each start a segment with the next sequence.
    let created = subject
        .wal()
        .segments()
        .last()
        .expect("a segment")
        .header
        .sequence
        - 1;
    assert!(
        created >= 3,
        "{context}: only {created} segments started after the first"
    );
}

#[test]
fn random_histories_never_lose_reuse_or_reorder_an_lsn() {
    let seed = wal_support::seed(0x15_5A4F);
    for history in 0..HISTORIES {
        run_history(seed, history, false);
    }
}

#[test]
fn random_histories_with_full_verification_reopens() {
    let seed = wal_support::seed(0x15_5A4F);
    for history in 0..HISTORIES {
        run_history(seed, history, true);
    }
}

/// The smallest history of the bug above: close, open with full
/// verification, append, iterate.
#[test]
fn a_full_verification_reopen_after_a_clean_close_keeps_the_log_iterable() {
    let seed = wal_support::seed(0xF011);
    let dir = temp_dir();
    let mut model = LogModel::new();
    let mut wal = Wal::open_with(dir.path(), &std_options(SEGMENT_BYTES)).expect("open");
    for _ in 0..5 {
        let bytes = payload(seed, model.next_lsn());
        assert_eq!(wal.append(&bytes).expect("append").0, model.append(bytes));
    }
    wal.close().expect("close");
    let full = WalOptions {
        verification: OpenVerification::Full,
        ..std_options(SEGMENT_BYTES)
    };
    let mut wal = Wal::open_with(dir.path(), &full).expect("full open");
    let bytes = payload(seed, model.next_lsn());
    assert_eq!(wal.append(&bytes).expect("append").0, model.append(bytes));
    assert_contents(&mut wal, &model, "after a full open and an append");
    drop(wal);
    let mut wal = Wal::open_with(dir.path(), &std_options(SEGMENT_BYTES)).expect("reopen");
    assert_contents(&mut wal, &model, "after a reopen");
}

/// A log of three segments with the first checkpointed away.
fn checkpointed_log(seed: u64) -> (TempDir, Wal, LogModel) {
    let dir = temp_dir();
    let mut wal = Wal::open_with(dir.path(), &std_options(SEGMENT_BYTES)).expect("open");
    let mut model = LogModel::new();
    // Bounded: each record takes at least a kilobyte of a 32 KiB segment.
    for _ in 0..200 {
        if wal.segment_count() >= 3 {
            break;
        }
        let bytes = payload_with_len(seed, model.next_lsn(), 1000 + (seed % 100) as usize);
        assert_eq!(wal.append(&bytes).expect("append").0, model.append(bytes));
    }
    let second = wal.segments()[1].header.base_lsn;
    assert_eq!(wal.checkpoint(Lsn(second)).expect("checkpoint"), 1);
    model.drop_before(wal.first_lsn().0);
    assert!(model.first_lsn > 1, "the first segment is gone");
    (dir, wal, model)
}

#[test]
fn refused_requests_change_nothing() {
    let seed = wal_support::seed(0x4EF);
    let (dir, mut wal, mut model) = checkpointed_log(seed);
    let (first, next) = (model.first_lsn, model.next_lsn());
    let files = snapshot_segments(dir.path());
    let out_of_range = |lsn: u64| {
        move |e: &Error| {
            matches!(e.as_log(), Some(segwal::Error::LsnOutOfRange { lsn: l, first_lsn, next_lsn })
                if *l == lsn && *first_lsn == first && *next_lsn == next)
        }
    };
    let too_large = |e: &Error| matches!(e.as_log(), Some(segwal::Error::RecordTooLarge { .. }));
    let segment = vec![7u8; usize::try_from(SEGMENT_BYTES).expect("fits")];
    let small = vec![1u8; 1000];
    let many_small: Vec<&[u8]> = (0..40).map(|_| small.as_slice()).collect();
    type Attempt<'a> = (
        String,
        Box<dyn FnOnce(&mut Wal) -> Result<(), Error> + 'a>,
        Box<dyn Fn(&Error) -> bool + 'a>,
    );
    let attempts: Vec<Attempt<'_>> = vec![
        (
            "checkpoint(first - 1)".into(),
            Box::new(move |w| w.checkpoint(Lsn(first - 1)).map(drop)),
            Box::new(out_of_range(first - 1)),
        ),
        (
            "checkpoint(next)".into(),
            Box::new(move |w| w.checkpoint(Lsn(next)).map(drop)),
            Box::new(out_of_range(next)),
        ),
        (
            "checkpoint(u64::MAX)".into(),
            Box::new(|w| w.checkpoint(Lsn(u64::MAX)).map(drop)),
            Box::new(out_of_range(u64::MAX)),
        ),
        (
            "truncate_after(next)".into(),
            Box::new(move |w| w.truncate_after(Lsn(next))),
            Box::new(out_of_range(next)),
        ),
        (
            "truncate_after(first - 2)".into(),
            Box::new(move |w| w.truncate_after(Lsn(first - 2))),
            Box::new(out_of_range(first - 2)),
        ),
        (
            "read(first - 1), checkpointed".into(),
            Box::new(move |w| w.read(Lsn(first - 1)).map(drop)),
            Box::new(out_of_range(first - 1)),
        ),
        (
            "read(1), checkpointed".into(),
            Box::new(|w| w.read(Lsn(1)).map(drop)),
            Box::new(out_of_range(1)),
        ),
        (
            "read(0)".into(),
            Box::new(|w| w.read(Lsn(0)).map(drop)),
            Box::new(out_of_range(0)),
        ),
        (
            "read(next)".into(),
            Box::new(move |w| w.read(Lsn(next)).map(drop)),
            Box::new(out_of_range(next)),
        ),
        (
            "iter_from(next + 1)".into(),
            Box::new(move |w| w.iter_from(Lsn(next + 1)).map(drop)),
            Box::new(out_of_range(next + 1)),
        ),
        (
            "iter_from(first - 1)".into(),
            Box::new(move |w| w.iter_from(Lsn(first - 1)).map(drop)),
            Box::new(out_of_range(first - 1)),
        ),
        (
            "append of a whole segment".into(),
            Box::new(|w| w.append(&segment).map(drop)),
            Box::new(too_large),
        ),
        (
            "a batch with a record larger than a segment".into(),
            Box::new(|w| w.append_batch(&[&small, &segment]).map(drop)),
            Box::new(too_large),
        ),
        (
            "a batch larger than a segment".into(),
            Box::new(|w| w.append_batch(&many_small).map(drop)),
            Box::new(too_large),
        ),
    ];
    for (what, attempt, expected) in attempts {
        let error = match attempt(&mut wal) {
            Ok(()) => panic!("{what}: accepted"),
            Err(error) => error,
        };
        assert!(expected(&error), "{what}: wrong error {error}");
        assert_lsns(&wal, &model, &what);
        assert!(
            snapshot_segments(dir.path()) == files,
            "{what}: segment files changed"
        );
    }
    assert_contents(&mut wal, &model, "after the refused requests");
    // Not poisoned: the next append gets the next LSN.
    let bytes = payload(seed, next);
    assert_eq!(
        wal.append(&bytes).expect("append after refusals").0,
        model.append(bytes)
    );
    drop(wal);
    let mut wal = Wal::open_with(dir.path(), &std_options(SEGMENT_BYTES)).expect("reopen");
    assert_contents(&mut wal, &model, "reopened");
}

#[test]
fn record_len_max_is_enforced_without_writing() {
    let seed = wal_support::seed(0x1E4);
    let dir = temp_dir();
    let options = WalOptions {
        record_len_max: Some(100),
        ..std_options(SEGMENT_BYTES)
    };
    let mut wal = Wal::open_with(dir.path(), &options).expect("open");
    let mut model = LogModel::new();
    let exactly = payload_with_len(seed, 1, 100);
    assert_eq!(
        wal.append(&exactly).expect("100 bytes").0,
        model.append(exactly)
    );
    let files = snapshot_segments(dir.path());
    match wal.append(&payload_with_len(seed, 2, 101)) {
        Err(e) => assert!(
            matches!(
                e.as_log(),
                Some(segwal::Error::RecordTooLarge {
                    len_bytes: 101,
                    max_bytes: 100
                })
            ),
            "wrong error {e}"
        ),
        Ok(lsn) => panic!("101 bytes over a maximum of 100 appended as {lsn}"),
    }
    assert!(
        snapshot_segments(dir.path()) == files,
        "a refused append wrote"
    );
    assert_lsns(&wal, &model, "after the refusal");
    let bytes = payload_with_len(seed, 3, 7);
    assert_eq!(wal.append(&bytes).expect("append").0, model.append(bytes));
    assert_contents(&mut wal, &model, "after the refusal");
}

#[test]
fn a_path_that_is_a_file_is_not_a_directory() {
    let dir = temp_dir();
    let path = dir.path().join("not-a-directory");
    fs::write(&path, b"precious").expect("write");
    for read_only in [false, true] {
        let opened = if read_only {
            Wal::open_read_only(&path)
        } else {
            Wal::open_with(&path, &std_options(SEGMENT_BYTES))
        };
        match opened {
            Err(Error::NotADirectory(named)) => assert_eq!(named, path),
            Err(other) => panic!("read-only {read_only}: wrong error {other}"),
            Ok(_) => panic!("read-only {read_only}: opened a file as a log directory"),
        }
    }
    assert_eq!(
        fs::read(&path).expect("read"),
        b"precious",
        "the file was touched"
    );
}

/// `true` when this process can create files in `dir` despite its mode
/// (root can): the permission test then proves nothing.
fn permissions_are_ignored(dir: &Path) -> bool {
    let probe = dir.join("probe");
    match fs::write(&probe, b"") {
        Ok(()) => {
            fs::remove_file(&probe).expect("remove the probe");
            true
        }
        Err(_) => false,
    }
}

#[test]
fn a_directory_the_writer_cannot_write_in_is_a_clear_io_error() {
    let parent = temp_dir();
    let dir = parent.path().join("log");
    fs::create_dir(&dir).expect("mkdir");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o555)).expect("chmod");
    let restore = |dir: &Path| {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod back");
    };
    if permissions_are_ignored(&dir) {
        restore(&dir);
        println!("skipped: this process ignores directory permissions (root)");
        return;
    }
    let opened = Wal::open_with(&dir, &std_options(SEGMENT_BYTES));
    restore(&dir);
    match opened {
        Err(Error::Io { path, source }) => {
            assert!(path.starts_with(&dir), "names {}", path.display());
            assert_eq!(
                source.kind(),
                std::io::ErrorKind::PermissionDenied,
                "{source}"
            );
        }
        Err(other) => panic!("wrong error {other}"),
        Ok(_) => panic!("opened a log in a read-only directory"),
    }
    assert_eq!(
        fs::read_dir(&dir).expect("list").count(),
        0,
        "the failed open left files"
    );
}
