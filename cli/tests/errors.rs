//! Errors a person can act on: a missing directory, a path that is a file,
//! a directory that is not a segwal log, a locked log and a corrupt
//! segment each give one line on stderr, `segwal: <what and where>`, exit
//! code 2 (verify: 1 for damage), and never a panic or a backtrace; bad
//! usage exits 2 too.

mod common;

use std::ffi::OsStr;

use common::{args, assert_error_line, flip_byte, log_with, run, segment_file, stderr};

const READ_ONLY_COMMANDS: [&str; 4] = ["info", "dump", "verify", "tail"];

#[test]
fn a_missing_directory() {
    let temp = tempfile::tempdir().expect("tempdir");
    let missing = temp.path().join("nope");
    let shown = missing.display().to_string();
    for command in READ_ONLY_COMMANDS.iter().chain(&["repair"]) {
        let output = run(args(command, &missing, &[]));
        assert_error_line(&output, &[&shown, "no such directory"]);
    }
    assert!(!missing.exists(), "nothing created it");
}

#[test]
fn a_path_that_is_a_file() {
    let temp = tempfile::tempdir().expect("tempdir");
    let file = temp.path().join("file.txt");
    std::fs::write(&file, "hello").expect("write");
    let shown = file.display().to_string();
    for command in READ_ONLY_COMMANDS.iter().chain(&["repair", "append"]) {
        let output = run(args(command, &file, &[]));
        assert_error_line(&output, &[&shown, "is a file, not a log directory"]);
    }
    assert_eq!(std::fs::read(&file).expect("read"), b"hello");
}

#[test]
fn a_directory_that_is_not_a_log() {
    let temp = tempfile::tempdir().expect("tempdir");
    std::fs::write(temp.path().join("readme"), "x").expect("write");
    let shown = temp.path().display().to_string();
    for command in READ_ONLY_COMMANDS.iter().chain(&["repair", "append"]) {
        let output = run(args(command, temp.path(), &[]));
        assert_error_line(&output, &[&shown, "not a segwal log"]);
    }
    let empty = tempfile::tempdir().expect("tempdir");
    for command in READ_ONLY_COMMANDS.iter().chain(&["repair"]) {
        let output = run(args(command, empty.path(), &[]));
        assert_error_line(&output, &["not a segwal log"]);
    }
    assert_eq!(std::fs::read_dir(empty.path()).expect("list").count(), 0);
}

#[test]
fn a_locked_log() {
    let (_temp, dir) = log_with(5);
    let holder = common::open_writer(&dir);
    let pid = std::process::id().to_string();
    let shown = dir.display().to_string();
    for command in ["repair", "append"] {
        let output = run(args(command, &dir, &[]));
        assert_error_line(&output, &[&shown, "locked by process", &pid]);
    }
    // The read-only commands work beside the writer.
    for command in READ_ONLY_COMMANDS {
        let output = run(args(command, &dir, &[]));
        assert_eq!(
            output.status.code(),
            Some(0),
            "{command}: {}",
            stderr(&output)
        );
    }
    drop(holder);
}

#[test]
fn a_corrupt_segment_header() {
    let (_temp, dir) = log_with(300);
    flip_byte(&segment_file(&dir, 2), 30, 0x04); // base_lsn
    let file = segment_file(&dir, 2).display().to_string();
    for command in ["info", "dump", "tail", "repair"] {
        let output = run(args(command, &dir, &[]));
        assert_error_line(
            &output,
            &[&file, "segment 2 is corrupt at offset 0", "checksum"],
        );
    }
    let output = run(args("verify", &dir, &[]));
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn a_corrupt_record_while_dumping() {
    let (_temp, dir) = log_with(300);
    let records = common::dump_json(&dir);
    let offset = common::field(&records[9], "offset");
    flip_byte(&segment_file(&dir, 1), offset + 20, 0x01);
    let output = run(args("dump", &dir, &[]));
    assert_error_line(
        &output,
        &[
            &segment_file(&dir, 1).display().to_string(),
            &format!("segment 1 has no valid record at offset {offset}"),
            "checksum",
            "(LSN 10)",
        ],
    );
    // The records before the damage were printed.
    assert_eq!(common::stdout(&output).lines().count(), 9);
}

#[test]
fn bad_usage_exits_two_without_a_panic() {
    for bad in [
        &["frobnicate"][..],
        &["dump"][..],
        &["dump", "/tmp", "--format", "xml"][..],
        &["dump", "/tmp", "--from", "minus one"][..],
    ] {
        let output = run(bad.iter().map(OsStr::new));
        assert_eq!(output.status.code(), Some(2), "{bad:?}");
        assert!(!stderr(&output).contains("panicked"));
    }
    let help = run(["--help"]);
    assert!(help.status.success());
    assert!(common::stdout(&help).contains("Exit codes:"));
}
