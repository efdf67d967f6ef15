//! `segwal repair` cuts a torn tail, refuses damage to acknowledged records
//! unless `--truncate-at-corruption` is given (writing nothing, exit 1),
//! cuts just before the damage with it, writes nothing with `--dry-run`
//! (every file byte-identical afterwards), never touches a log whose lock
//! another process holds, and never creates a log.

mod common;

use common::{
    args, assert_error_line, dump_json, field, flip_byte, log_with, run, segment_file, snapshot,
    stdout, write_at,
};

/// Extent of a test record: a 16-byte header and a 100-byte payload,
/// padded to 8 bytes.
const RECORD_EXTENT_BYTES: u64 = 120;

/// A log of `records` records whose newest segment has 40 bytes of
/// garbage after its last record: a write cut short.
fn torn_log(records: u64) -> (tempfile::TempDir, std::path::PathBuf, u64, u64) {
    let (temp, dir) = log_with(records);
    let last = dump_json(&dir).pop().expect("a record");
    let segment = field(&last, "segment");
    let end = field(&last, "offset") + RECORD_EXTENT_BYTES;
    write_at(&segment_file(&dir, segment), end, &[0xAB; 40]);
    (temp, dir, segment, end)
}

/// A log of 300 records with a flipped payload byte in LSN 3, in the
/// sealed first segment.
fn damaged_log() -> (tempfile::TempDir, std::path::PathBuf, u64) {
    let (temp, dir) = log_with(300);
    let offset = field(&dump_json(&dir)[2], "offset");
    flip_byte(&segment_file(&dir, 1), offset + 16 + 7, 0x10);
    (temp, dir, offset)
}

#[test]
fn a_clean_log_is_left_alone() {
    let (_temp, dir) = log_with(50);
    let before = snapshot(&dir);
    let output = run(args("repair", &dir, &[]));
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).contains("clean, nothing to repair"));
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn a_torn_tail_is_cut_and_dry_run_writes_nothing() {
    let (_temp, dir, segment, end) = torn_log(300);
    let before = snapshot(&dir);
    let output = run(args("repair", &dir, &["--dry-run"]));
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(
        text.contains(&format!("would cut the torn tail: 40 bytes after the last record of segment {segment} (offset {end})")),
        "{text}"
    );
    assert!(text.contains("dry run: nothing was written"));
    assert_eq!(snapshot(&dir), before, "dry run changed the files");

    let output = run(args("repair", &dir, &[]));
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    assert!(stdout(&output).contains(&format!(
        "cut at segment {segment} offset {end}: 40 bytes discarded"
    )));
    assert!(stdout(&output).contains("repaired; it holds LSN 1 to 300"));
    let info = run(args("info", &dir, &[]));
    assert!(
        stdout(&info).contains("tail       clean"),
        "{}",
        stdout(&info)
    );
    assert_eq!(dump_json(&dir).len(), 300, "no acknowledged record was cut");
}

#[test]
fn damage_is_refused_without_the_flag_and_nothing_is_written() {
    let (_temp, dir, offset) = damaged_log();
    let before = snapshot(&dir);
    for extra in [&[][..], &["--dry-run"][..]] {
        let output = run(args("repair", &dir, extra));
        assert_eq!(output.status.code(), Some(1), "{extra:?}");
        let text = stdout(&output);
        assert!(
            text.contains(&format!(
                "refusing: acknowledged records are damaged at segment 1 offset {offset} (LSN 3)"
            )),
            "{text}"
        );
        assert!(text.contains("drops LSN 3 to 300 (298 records)"), "{text}");
        assert!(text.contains("--truncate-at-corruption"), "{text}");
        assert_eq!(snapshot(&dir), before, "{extra:?} changed the files");
    }
}

#[test]
fn truncate_at_corruption_cuts_just_before_the_damage() {
    let (_temp, dir, offset) = damaged_log();
    let before = snapshot(&dir);
    let output = run(args(
        "repair",
        &dir,
        &["--truncate-at-corruption", "--dry-run"],
    ));
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).contains(&format!(
        "would cut the log before the damage at segment 1 offset {offset}"
    )));
    assert_eq!(snapshot(&dir), before);

    let output = run(args("repair", &dir, &["--truncate-at-corruption"]));
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("repaired; it holds LSN 1 to 2"), "{text}");
    let lines = dump_json(&dir);
    assert_eq!(lines.len(), 2);
    let verify = run(args("verify", &dir, &[]));
    assert_eq!(verify.status.code(), Some(0), "{}", stdout(&verify));
    // The log goes on from the cut.
    let mut wal = common::open_writer(&dir);
    assert_eq!(wal.append(b"after the cut").expect("append").0, 3);
}

#[test]
fn a_locked_log_is_never_touched() {
    let (_temp, dir) = log_with(20);
    let holder = common::open_writer(&dir);
    // After the holder's open, which records its pid in `LOCK`.
    let before = snapshot(&dir);
    let pid = std::process::id().to_string();
    for extra in [
        &[][..],
        &["--dry-run"][..],
        &["--truncate-at-corruption"][..],
    ] {
        let output = run(args("repair", &dir, extra));
        assert_error_line(&output, &["locked by process", &pid]);
        assert_eq!(snapshot(&dir), before, "{extra:?} wrote to a locked log");
    }
    drop(holder);
}

#[test]
fn repair_never_creates_a_log() {
    let temp = tempfile::tempdir().expect("tempdir");
    let missing = temp.path().join("missing");
    let output = run(args("repair", &missing, &[]));
    assert_error_line(&output, &["no such directory"]);
    assert!(!missing.exists());
    let empty = temp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let output = run(args("repair", &empty, &[]));
    assert_error_line(&output, &["not a segwal log"]);
    assert_eq!(std::fs::read_dir(&empty).expect("list").count(), 0);
}
